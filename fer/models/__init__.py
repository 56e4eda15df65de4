"""The model zoo: importing this package registers every model in `MODELS` (`create_model` builds one).

One module per family; model files import `_registry`, never this package. Imports only `fer.core`.
"""
from fer.models import cnn, deep_emotion, ensemble, resnet, study_e, transfer, xception  # noqa: F401  (registers)
from fer.models._registry import MODELS, count_parameters, create_model, register_model

__all__ = ["MODELS", "count_parameters", "create_model", "register_model"]
