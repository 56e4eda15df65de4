"""fer-studio dashboard: the `st.navigation` router and the shared sidebar.

Run with `streamlit run dashboard/app.py`. Every page is a thin view over the `fer` package; what
pages share (cached loaders, the sidebar's folders) lives in `common.py` beside this file.
"""
import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # pages import `common` from this folder, whoever started the app
    sys.path.insert(0, str(HERE))

from fer.data import default_data_path  # noqa: E402
from fer.runs.release import default_model_summary  # noqa: E402
from fer.core.device import device_summary  # noqa: E402
from fer.runs.store import default_runs_dir  # noqa: E402

st.set_page_config(page_title="fer-studio", page_icon="🙂", layout="wide")

with st.sidebar:
    st.session_state.setdefault("data_path", str(default_data_path()))
    st.text_input("FER2013 source (fer2013.csv or image-folder root)", key="data_path")
    st.session_state.setdefault("runs_dir", str(default_runs_dir()))
    st.text_input("Runs folder", key="runs_dir")
    st.caption(f"Default model: {default_model_summary()}")
    st.caption(f"Device: {device_summary()}")


def page(file: str, title: str, icon: str, **kwargs) -> st.Page:
    return st.Page(HERE / "views" / file, title=title, icon=f":material/{icon}:", **kwargs)


# Pages live in views/, not pages/: Streamlit would auto-list a pages/ folder beside st.navigation's menu.
st.navigation({
    "Data": [page("home.py", "Overview", "home", default=True), page("data.py", "Data", "dataset", url_path="data")],
    "Experiments": [page("train.py", "Train", "rocket_launch", url_path="train"),
                    page("runs.py", "Runs", "leaderboard", url_path="runs"),
                    page("studies.py", "Studies", "menu_book", url_path="studies"),
                    page("sweeps.py", "Sweeps", "tune", url_path="sweeps"),
                    page("confusion.py", "Confusion", "grid_on", url_path="confusion"),
                    page("gradcam.py", "Grad-CAM", "local_fire_department", url_path="gradcam")],
    "Inference": [page("predict.py", "Predict", "photo_camera", url_path="predict"),
                  page("video.py", "Video", "movie", url_path="video"),
                  page("webcam.py", "Webcam", "videocam", url_path="webcam")],
}).run()
