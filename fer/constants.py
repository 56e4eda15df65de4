"""Facts about FER2013 that every module agrees on."""

# FER2013's own numeric label order (the Kaggle CSV's `emotion` column). Models trained here and the
# usual FER2013 peers all use it; mixing it with alphabetical order silently costs ~20 points.
CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

IMAGE_SIZE = 48

# The dataset's own split names (the CSV `Usage` column and the image-file name prefixes).
SPLITS = ("Training", "PublicTest", "PrivateTest")
