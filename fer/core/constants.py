"""Facts about FER2013 that every module agrees on (and no heavy imports, so light commands stay fast)."""
from dataclasses import asdict, dataclass
from typing import Dict

# FER2013's own numeric label order (the Kaggle CSV's `emotion` column). Models trained here and the
# usual FER2013 peers all use it; mixing it with alphabetical order silently costs ~20 points.
CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

IMAGE_SIZE = 48

# The dataset's own split names (the CSV `Usage` column and the image-file name prefixes).
SPLITS = ("Training", "PublicTest", "PrivateTest")
# Both test splits scored as one test set (7,178 faces; Study E tests on their union where both exist).
BOTH_TESTS = "PublicTest+PrivateTest"
# Test-time augmentation modes (fer.inference.averaging cuts the views); named here so configs can check them.
TTA_MODES = ("none", "flip", "tencrop")


def split_parts(split: str) -> tuple:
    """The FER2013 splits a split name stands for: itself, or both halves of "PublicTest+PrivateTest"."""
    return tuple(str(split).split("+"))


def file_safe_split(split) -> bool:
    """Whether `split` can name an eval_<split>.json file (a split name, never a path)."""
    return isinstance(split, str) and split.replace("_", "").replace("+", "").isalnum()

# Pixel mean/std of FER2013 Training on the 0-1 scale (measured by `fer data stats` on 28,709 images).
FER2013_MEAN = 0.5136
FER2013_STD = 0.3067


@dataclass(frozen=True)
class Preprocessing:
    """How a 48×48 gray face becomes a model input; stored inside every checkpoint."""

    input_size: int = IMAGE_SIZE
    in_chans: int = 1
    mean: float = FER2013_MEAN
    std: float = FER2013_STD

    def to_dict(self) -> Dict:
        """JSON-friendly form."""
        return asdict(self)
