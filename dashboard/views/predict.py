"""Predict: upload photos; every face is boxed with its emotion and probabilities, Grad-CAM on demand."""
import altair as alt
import pandas as pd
import streamlit as st

from common import cached_classifier, model_choices, runs_dir, upload_limit_bytes
from fer.inference.annotate import annotate
from fer.inference.explain import CAM_METHODS, cam_caption, cam_methods, explain_faces, overlay
from fer.inference.faces import DetectorSettings, FACE_DETECTORS, FaceDetector, PHOTO_TILES, create_detector
from fer.inference.images import ImageError, load_image
from fer.inference.pipeline import NoFaceFound, predict_image
from fer.inference.averaging import DEFAULT_TTA, TTA_MODES


@st.cache_resource(show_spinner="Loading the face detector…", max_entries=6)
def cached_detector(name: str, min_confidence: float, min_face_size: int) -> FaceDetector:
    """One detector per setting for every session (detectors are thread-safe)."""
    settings = DetectorSettings(min_confidence=min_confidence, min_face_size=min_face_size, tiles=PHOTO_TILES)
    return create_detector(name, settings)


st.title("Predict")
choices = model_choices()

with st.sidebar.expander("Prediction settings", expanded=False):
    detector_name = st.selectbox("Face detector", ["auto", *FACE_DETECTORS.names()], key="predict_detector",
                                 help="auto: MediaPipe, or OpenCV Haar when MediaPipe's model cannot be fetched")
    min_confidence = st.slider("Minimum detection confidence", 0.1, 0.95, 0.5, 0.05, key="predict_min_conf")
    min_face_size = st.number_input("Minimum face size (px)", 10, 500, 20, key="predict_min_size")
    tta = st.selectbox("Test-time augmentation", TTA_MODES, index=TTA_MODES.index(DEFAULT_TTA), key="predict_tta",
                       help="flip averages each face with its mirror image (more accurate, twice the model "
                            "time); tencrop averages ten crops; none is the fastest")
    align = st.toggle("Level the eye line", key="predict_align")
    whole_image = st.toggle("No face found: classify the whole image", key="predict_whole")

names = st.multiselect("Model (several = an ensemble)", list(choices), default=list(choices)[:1],
                       key="predict_models")
uploads = st.file_uploader("Photos", type=["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"],
                           accept_multiple_files=True, key="predict_uploads")
if not names:
    st.info("Choose at least one model.")
    st.stop()
chosen = tuple(choices[n] for n in names)
detector = cached_detector(detector_name, min_confidence, int(min_face_size))
if detector.note:
    st.warning(detector.note)
show_cam = st.toggle("Show Grad-CAM for each face", key="predict_cam")
cam_method = st.selectbox("CAM method", cam_methods(), key="predict_cam_method",
                          format_func=lambda m: CAM_METHODS.info(m)["title"]) if show_cam else None
explainer = cached_classifier(chosen, runs_dir(), tta) if show_cam else None  # Grad-CAM needs the PyTorch model
if explainer is not None and not explainer.explainable:
    st.info(f"{names[0]} is not an image model, so it has no Grad-CAM.")
    show_cam, explainer = False, None
# With Grad-CAM on, the PyTorch model also gives the probabilities, so the bars and the CAM captions agree;
# otherwise the fastest engine available (ONNX Runtime int8 for the shipped model) answers.
predictor = explainer or cached_classifier(chosen, runs_dir(), tta, backend="auto")
NO_FACE_HINT = "Turn on “No face found: classify the whole image” under Prediction settings in the sidebar."

for i, upload in enumerate(uploads or []):
    st.subheader(upload.name)
    try:
        rgb = load_image(upload.getvalue(), upload.name, max_bytes=upload_limit_bytes())
        # Numbered as a reader scans the photo (rows, left to right), in the image and the tables alike.
        result = predict_image(predictor, rgb, detector, align=align, whole_image=whole_image).in_reading_order()
    except ImageError as e:
        st.error(str(e))
        continue
    except NoFaceFound as e:
        st.error(f"{e}. {NO_FACE_HINT}")
        continue
    if result.note and result.note != detector.note:
        st.info(result.note)
    left, right = st.columns([3, 2])
    left.image(annotate(rgb, result, bars=False),  # the probability charts beside it say the rest
               caption=f"{len(result.faces)} face(s), model {' + '.join(names)} "
                       f"({predictor.backend})")
    left.markdown(" · ".join(f"#{n}: **{f.label}** ({f.confidence:.0%})" for n, f in enumerate(result.faces, 1)))
    for n, face in enumerate(result.faces, 1):  # one chart per face, as wide as the column
        probs = pd.DataFrame({"emotion": list(face.probabilities), "probability": list(face.probabilities.values())})
        right.altair_chart(alt.Chart(probs, title=f"#{n}").mark_bar().encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            y=alt.Y("emotion:N", sort=list(predictor.class_names), title=None),
            color=alt.Color("emotion:N", legend=None),
            tooltip=["emotion", alt.Tooltip("probability:Q", format=".1%")]).properties(height=alt.Step(20)),
            width="stretch", key=f"predict_probs_{i}_{n}")
    right.dataframe(pd.DataFrame([{"face": f"#{n}", "emotion": f.label, "confidence": f.confidence,
                                   "box (x, y, w, h)": str(f.box)} for n, f in enumerate(result.faces, 1)]),
                    hide_index=True, key=f"predict_table_{i}", placeholder="")
    if show_cam:
        faces = [f.face for f in result.faces]
        heatmaps, classes = explain_faces(explainer, faces, cam_method)
        st.image([overlay(face, heat) for face, heat in zip(faces, heatmaps)],
                 caption=[f"#{n}: {cam_caption(cam_method, predictor.class_names[c])}" for n, c in enumerate(classes, 1)])
