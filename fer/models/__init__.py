"""The model zoo: importing this package registers every model in `MODELS`."""
from fer.models import cnn, deep_emotion, resnet, xception  # noqa: F401  (registers the models)
from fer.models._registry import MODELS, count_parameters, create_model, register_model

__all__ = ["MODELS", "count_parameters", "create_model", "register_model"]
