"""Scores of predicted probabilities against labels: classification metrics (accuracy, macro-F1,
per-class scores, the confusion matrix, the per-image table) and calibration (temperature scaling,
expected calibration error, reliability bins). Pure NumPy / scikit-learn; imports only `fer.core`.
"""
