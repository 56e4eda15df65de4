"""Grad-CAM: where a model looks. Test faces by class (or an uploaded photo) as a grid of CAM overlays,
plus CBAM attention maps and Deep-Emotion's spatial-transformer output for those models."""
import numpy as np
import streamlit as st

from common import (cached_classifier, cached_dataset, data_path, model_choices, runs_dir,
                    upload_limit_bytes)
from fer.data import DataError
from fer.data.stats import sample_faces
from fer.inference.explain import (CAM_METHODS, attention_views, cam_caption, cam_methods, explain_faces,
                                   is_class_sensitive, overlay)
from fer.inference.faces import DetectorSettings, PHOTO_TILES, create_detector
from fer.inference.images import ImageError, load_image
from fer.inference.pipeline import NoFaceFound, predict_image

st.title("Grad-CAM")
choices = model_choices()
left, mid, right = st.columns(3)
name = left.selectbox("Model", list(choices), key="cam_model")
predictor = cached_classifier((choices[name],), runs_dir())
if not predictor.explainable:
    st.warning(f"{name} is not an image model (MediaPipe features), so it has no class activation maps.")
    st.stop()
method = mid.selectbox("Method", cam_methods(), key="cam_method", format_func=lambda m: CAM_METHODS.info(m)["title"])
class_sensitive = is_class_sensitive(method)
target = right.selectbox("Explain class", ["(predicted)", *predictor.class_names], key="cam_target",
                         disabled=not class_sensitive,
                         help=None if class_sensitive else "This method shows the same map whatever the class.")
layer = st.text_input("Layer (empty: the model's declared layer)", value="", key="cam_layer",
                      placeholder=predictor.model.cam_layer)
source = st.radio("Faces", ["Test images by class", "Upload a photo"], horizontal=True, key="cam_source")

faces, captions = [], []
if source == "Test images by class":
    try:
        data = cached_dataset(data_path())
    except DataError as e:
        st.warning(f"No FER2013 data found ({e}); upload a photo instead.")
        st.stop()
    split = "PublicTest" if "PublicTest" in set(data.split_names()) else None
    cls = st.selectbox("True class", list(data.class_names), key="cam_class")
    count = st.slider("Faces", 4, 24, 8, key="cam_count")
    faces = list(sample_faces(data, count, split, seed=1)[cls])
    captions = [f"true {cls}"] * len(faces)
else:
    upload = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "webp", "bmp"], key="cam_upload")
    if upload is not None:
        try:
            with create_detector("auto", DetectorSettings(tiles=PHOTO_TILES)) as detector:
                if detector.note:
                    st.warning(detector.note)
                rgb = load_image(upload.getvalue(), upload.name, max_bytes=upload_limit_bytes())
                result = predict_image(predictor, rgb, detector)
            faces = [f.face for f in result.faces]
            captions = [f"face #{i}" for i in range(1, len(faces) + 1)]
        except ImageError as e:
            st.error(str(e))
        except NoFaceFound:
            st.error("No face found in this photo: try another one, or the test images by class.")

if faces:
    stack = np.stack(faces)
    try:
        heatmaps, classes = explain_faces(predictor, stack, method,
                                          None if target == "(predicted)" or not class_sensitive else target,
                                          layer or None)
    except AttributeError:
        st.error(f"The model has no layer {layer!r}; leave it empty for {predictor.model.cam_layer!r}.")
        st.stop()
    probs = predictor.predict_faces(stack)
    st.image([overlay(f, h) for f, h in zip(faces, heatmaps)], width=160,
             caption=[f"{c} · pred {predictor.class_names[p.argmax()]} {p.max():.0%} · "
                      f"{cam_caption(method, predictor.class_names[k])}" for c, p, k in zip(captions, probs, classes)])
    views = attention_views(predictor, stack)
    for title, maps in views.items():
        st.caption(title)
        if "transformer" in title:
            st.image([(m * 255).astype(np.uint8) for m in maps], width=96)
        else:
            st.image([overlay(f, m) for f, m in zip(faces, maps)], width=96)
