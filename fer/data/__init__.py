"""FER2013 data: readers (CSV and image folders), the decoded cache, FER+ labels, splits, a run's data
(`RunData`), statistics, augmentation presets, the one face → model-input preprocessing, and torch
datasets and loaders. Imports `fer.core` and `fer.config`; PyTorch only in augment, preprocess and loaders."""
from fer.data.cache import default_data_path, load_fer2013
from fer.data.facedata import DataError, FaceData, LoadReport
from fer.data.ferplus import FERPLUS_CLASSES, apply_ferplus, load_run_data, run_class_names
from fer.data.readers import read_fer_csv, read_image_folders
from fer.data.rundata import RunData
from fer.data.splits import Splits, make_splits, splits_for

__all__ = ["RunData", "FERPLUS_CLASSES", "apply_ferplus", "load_run_data", "run_class_names", "DataError", "FaceData", "LoadReport", "Splits", "default_data_path", "load_fer2013",
           "make_splits", "read_fer_csv", "read_image_folders", "splits_for"]
