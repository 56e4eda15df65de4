"""Webcam: live emotion recognition in the browser through streamlit-webrtc, with the same predictor.

Frames come back at camera rate with the latest labels; the model works on the newest frame on its own
thread (fer.inference.live), so a busy CPU slows the labels, not the video. ICE servers come from `FER_ICE_SERVERS` (JSON list) or Streamlit secrets (`ice_servers`); with none, a
localhost connection uses host candidates and never waits on an unreachable STUN server.
"""
import json
import os

import altair as alt
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from common import cached_classifier, model_choices, runs_dir
from fer.inference.faces import DetectorSettings, FACE_DETECTORS, create_detector
from fer.inference.live import LIVE_THREADS, LiveAnalyzer, Timeline


def ice_servers() -> list:
    raw = os.environ.get("FER_ICE_SERVERS")
    if raw:
        return json.loads(raw)
    try:
        return list(st.secrets.get("ice_servers", []))
    except Exception:  # no secrets file
        return []


st.title("Webcam")
choices = model_choices()
c1, c2, c3 = st.columns(3)
names = c1.multiselect("Model", list(choices), default=list(choices)[:1], key="webcam_models") or list(choices)[:1]
detector_name = c2.selectbox("Face detector", ["auto", *FACE_DETECTORS.names()], key="webcam_detector")
min_confidence = c3.slider("Minimum confidence", 0.1, 0.95, 0.5, 0.05, key="webcam_min_conf")
with st.expander("Live settings"):
    threads = st.number_input("Threads for live inference", 1, os.cpu_count() or 1, LIVE_THREADS,
                              key="webcam_threads",
                              help="One is fastest on a busy CPU (a training job beside the dashboard).")

# The fastest engine available (ONNX Runtime int8 for the shipped model when the onnx extra is installed).
predictor = cached_classifier(tuple(choices[n] for n in names), runs_dir(), backend="auto", threads=int(threads))
settings_key = (tuple(names), detector_name, min_confidence, int(threads))
if "webcam_analyzer" not in st.session_state:
    detector = create_detector(detector_name, DetectorSettings(min_confidence=min_confidence))
    st.session_state["webcam_analyzer"] = LiveAnalyzer(predictor, detector)
    st.session_state["webcam_settings"] = settings_key
    st.session_state["webcam_timeline"] = Timeline()
analyzer: LiveAnalyzer = st.session_state["webcam_analyzer"]
if st.session_state["webcam_settings"] != settings_key:
    # Settings reach the video thread through the analyzer's lock; it closes the detector it replaces.
    analyzer.update(predictor, create_detector(detector_name, DetectorSettings(min_confidence=min_confidence)))
    st.session_state["webcam_settings"] = settings_key
analyzer.threads = int(threads)
if analyzer.note:
    st.warning(analyzer.note)
st.caption(f"Inference engine: {predictor.backend} (the fastest available)")


def on_frame(frame):
    """Runs in streamlit-webrtc's worker thread: no st.* calls here."""
    import av
    return av.VideoFrame.from_ndarray(analyzer.process(frame.to_ndarray(format="rgb24")), format="rgb24")


ctx = webrtc_streamer(key="webcam_stream", mode=WebRtcMode.SENDRECV, video_frame_callback=on_frame,
                      media_stream_constraints={"video": True, "audio": False},
                      rtc_configuration={"iceServers": ice_servers()}, async_processing=True)


@st.fragment(run_every=1)
def timeline() -> None:
    """Drains the result queue every second into a per-second emotion chart."""
    tl: Timeline = st.session_state["webcam_timeline"]
    tl.drain(analyzer.results)
    st.caption(f"Frames processed: {analyzer.frames} · {analyzer.fps():.1f} FPS returned · model "
               f"{analyzer.inference_fps():.1f} frames/s · labels {analyzer.last_latency_s * 1000:.0f} ms old")
    advice = analyzer.overload()
    if advice:
        st.warning(advice)
    data = tl.frame()
    if not data.empty:
        latest = data[data["second"] == 0].sort_values("probability", ascending=False)
        st.markdown(f"Now: **{latest.iloc[0]['emotion']}** ({latest.iloc[0]['probability']:.0%})")
        st.altair_chart(alt.Chart(data).mark_area().encode(
            x=alt.X("second:Q", title="seconds ago"), y=alt.Y("probability:Q", stack="normalize"),
            color="emotion:N"), key="webcam_timeline_chart")


if ctx.state.playing or analyzer.frames:
    timeline()
else:
    st.info("Press START and allow the camera. Frames are analysed on this machine; nothing is stored.")
