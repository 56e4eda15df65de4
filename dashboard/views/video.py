"""Video: upload a clip; every face is tracked through it, with an emotion timeline per face and a CSV.

A thin view over `fer.inference.video.analyse_video`: the same detector → crop → model path as photos and the
webcam, faces keep their number through the clip, and the result stays in the session until the clip
or a setting changes.
"""
import tempfile
from pathlib import Path

import altair as alt
import streamlit as st

from access import server_settings
from common import cached_classifier, model_choices, runs_dir, upload_limit_bytes
from fer.inference.faces import DetectorSettings, FACE_DETECTORS, PHOTO_TILES, create_detector
from fer.inference.video import VIDEO_SUFFIXES, VideoError, analyse_video

st.title("Video")
choices = model_choices()
c1, c2, c3 = st.columns(3)
names = c1.multiselect("Model", list(choices), default=list(choices)[:1], key="video_models") or list(choices)[:1]
every = c2.number_input("Analyse every Nth frame", 1, 100, 1, key="video_every",
                        help="2 halves the work; in-between frames are drawn with the latest result.")
smoothing = c3.slider("Smoothing over time (EMA)", 0.0, 0.95, 0.0, 0.05, key="video_smoothing",
                      help="0 = off. Higher values steady a label that flickers between two close emotions.")
detector_name = st.sidebar.selectbox("Face detector", ["auto", *FACE_DETECTORS.names()], key="video_detector")
upload = st.file_uploader("A video clip", type=list(VIDEO_SUFFIXES), key="video_upload")
if upload is None:
    st.info("Upload a clip (MP4, MOV, WebM, AVI, MKV …). It is analysed on this machine and not stored.")
    st.stop()
if upload.size > upload_limit_bytes():
    st.error(f"{upload.name} is {upload.size / 1e6:.0f} MB; the limit is {upload_limit_bytes() / 1e6:.0f} MB.")
    st.stop()

settings = (upload.file_id, tuple(names), int(every), float(smoothing), detector_name)
if st.session_state.get("video_stop"):  # pressed while the clip was analysed: that run of the page ended there
    st.session_state["video_stopped"] = settings
if st.session_state.get("video_stopped") == settings:
    st.info("Analysis stopped. Change a setting or upload another clip, or analyse this one again.")
    if st.button("Analyse again", key="video_again"):
        del st.session_state["video_stopped"]
        st.rerun()
    st.stop()
if st.session_state.get("video_settings") != settings:
    classifier = cached_classifier(tuple(choices[n] for n in names), runs_dir(), backend="auto")
    bar = st.progress(0.0, text="Analysing…")
    # A click stops this run of the page at its next progress update (Streamlit reruns on any widget).
    st.button("Stop", key="video_stop", help="Stop analysing this clip")

    def progress(read: int, total: int) -> None:
        if total and read % 10 == 0:
            bar.progress(min(1.0, read / total), text=f"Analysing frame {read} of {total}…")

    with tempfile.TemporaryDirectory(prefix="fer-video-") as tmp:
        clip, annotated = Path(tmp) / f"clip{Path(upload.name).suffix}", Path(tmp) / "annotated.mp4"
        clip.write_bytes(upload.getvalue())
        try:
            # The same search as `fer video` and photos (whole frame and tiles), so both find the same faces.
            with create_detector(detector_name, DetectorSettings(tiles=PHOTO_TILES)) as detector:
                result = analyse_video(clip, classifier, detector, every=int(every), smoothing=float(smoothing),
                                       annotate_to=annotated, on_frame=progress,
                                       max_frames=server_settings().video_max_frames)
                note = detector.note
        except VideoError as e:
            bar.empty()
            st.error(str(e).replace(str(clip), upload.name))
            st.stop()
        st.session_state["video_result"] = (result, annotated.read_bytes(), note, classifier.backend
                                            if hasattr(classifier, "backend") else "features")
    st.session_state["video_settings"] = settings
    bar.empty()

result, annotated_mp4, note, backend = st.session_state["video_result"]
info = result.info
if note:
    st.warning(note)
for warning in result.warnings:
    st.warning(warning)
st.caption(f"{info.width}×{info.height}, {info.fps:.1f} fps, {info.duration_s:.1f} s · {result.frames_read} frames, "
           f"{result.frames_analysed} analysed · model {' + '.join(names)} ({backend})"
           + (f" · analysed at {info.analysed_width}×{info.analysed_height}" if info.scale < 1 else ""))
left, right = st.columns([3, 2])
left.video(annotated_mp4, format="video/mp4")
left.download_button("Download the annotated video", annotated_mp4, file_name=f"{Path(upload.name).stem}_fer.mp4",
                     mime="video/mp4", key="video_download_mp4")
if result.rows.empty:
    right.info("No face was found in the analysed frames.")
    st.stop()

tracks = result.tracks
right.metric("Faces tracked", len(tracks))
shares = tracks.melt(id_vars=["track"], value_vars=[c for c in tracks.columns if c.startswith("share_")],
                     var_name="emotion", value_name="share")
shares["emotion"], shares["face"] = shares["emotion"].str[6:], "#" + shares["track"].astype(str)
right.altair_chart(alt.Chart(shares, title="Share of frames per emotion").mark_bar().encode(
    x=alt.X("share:Q", stack="normalize", axis=alt.Axis(format="%"), title=None),
    y=alt.Y("face:N", title="face"), color="emotion:N",
    tooltip=["face", "emotion", alt.Tooltip("share:Q", format=".0%")]).configure_legend(
    orient="bottom", columns=4, labelLimit=0), width="stretch", key="video_shares")  # a legend that fits the column
right.dataframe(tracks[["track", "frames", "first_s", "last_s", "dominant"]], hide_index=True, key="video_tracks",
                placeholder="")

longest_first = tracks.sort_values("frames", ascending=False)["track"]  # the timeline opens on the main face
face = st.selectbox("Emotion timeline of face", [f"#{t}" for t in longest_first], key="video_face",
                    format_func=lambda f: f"{f} ({int(tracks.set_index('track').loc[int(f[1:]), 'frames'])} frames)")
timeline = result.timeline()
timeline = timeline[timeline["track"] == int(face[1:])]
st.altair_chart(alt.Chart(timeline).mark_area().encode(
    x=alt.X("time_s:Q", title="seconds"), y=alt.Y("probability:Q", stack="normalize", axis=alt.Axis(format="%")),
    color="emotion:N", tooltip=["time_s", "emotion", alt.Tooltip("probability:Q", format=".1%")]),
    width="stretch", key="video_timeline")
st.download_button("Download the CSV (every analysed frame and face)", result.rows.to_csv(index=False),
                   file_name=f"{Path(upload.name).stem}_fer.csv", mime="text/csv", key="video_download_csv")
st.dataframe(result.rows, hide_index=True, key="video_rows", placeholder="")
