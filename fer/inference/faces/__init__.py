"""Faces in photos and frames: detection (MediaPipe / Haar / none), model-file cache, cropping."""
from fer.inference.faces.crop import crop_face, to_gray
from fer.inference.faces.detectors import (DetectorSettings, FACE_DETECTORS, Face, FaceDetector, PHOTO_TILES,
                                           create_detector, merge_faces)
from fer.inference.faces.model_files import ModelFileUnavailable, ensure_model_file, model_cache_dir

__all__ = ["FACE_DETECTORS", "PHOTO_TILES", "merge_faces", "DetectorSettings", "Face", "FaceDetector", "ModelFileUnavailable", "create_detector",
           "crop_face", "ensure_model_file", "model_cache_dir", "to_gray"]
