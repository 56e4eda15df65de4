"""FER2013 data: readers, the decoded cache, splits, statistics and torch datasets."""
from fer.data.cache import default_data_path, load_fer2013
from fer.data.facedata import DataError, FaceData, LoadReport
from fer.data.ferplus import FERPLUS_CLASSES, apply_ferplus, load_run_data, run_class_names
from fer.data.readers import read_fer_csv, read_image_folders
from fer.data.splits import Splits, make_splits, split_index, splits_for

__all__ = ["FERPLUS_CLASSES", "apply_ferplus", "load_run_data", "run_class_names", "DataError", "FaceData", "LoadReport", "Splits", "default_data_path", "load_fer2013",
           "make_splits", "read_fer_csv", "read_image_folders", "split_index", "splits_for"]
