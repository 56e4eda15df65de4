"""fer-studio: a facial expression recognition (FER2013) workbench."""
from fer.core.constants import CLASS_NAMES, IMAGE_SIZE, SPLITS

__version__ = "0.1.0"
__all__ = ["CLASS_NAMES", "IMAGE_SIZE", "SPLITS", "__version__"]
