"""fer-studio dashboard: the `st.navigation` router and the shared sidebar.

Run with `streamlit run dashboard/app.py`. Every page is a thin view over the `fer` package.
"""
from pathlib import Path

import streamlit as st

from fer.data import default_data_path
from fer.default_model import default_model_summary
from fer.device import device_summary
from fer.runs import default_runs_dir

HERE = Path(__file__).parent

st.set_page_config(page_title="fer-studio", page_icon="🙂", layout="wide")

with st.sidebar:
    st.session_state.setdefault("data_path", str(default_data_path()))
    st.text_input("FER2013 source (fer2013.csv or image-folder root)", key="data_path")
    st.session_state.setdefault("runs_dir", str(default_runs_dir()))
    st.text_input("Runs folder", key="runs_dir")
    st.caption(f"Default model: {default_model_summary()}")
    st.caption(f"Device: {device_summary()}")

# Pages live in views/, not pages/: Streamlit would auto-list a pages/ folder beside st.navigation's menu.
page = st.navigation([
    st.Page(HERE / "views" / "home.py", title="Overview", icon=":material/home:", default=True),
    st.Page(HERE / "views" / "data.py", title="Data", icon=":material/dataset:", url_path="data"),
    st.Page(HERE / "views" / "train.py", title="Train", icon=":material/rocket_launch:", url_path="train"),
    st.Page(HERE / "views" / "runs.py", title="Runs", icon=":material/leaderboard:", url_path="runs"),
    st.Page(HERE / "views" / "confusion.py", title="Confusion", icon=":material/grid_on:", url_path="confusion"),
    st.Page(HERE / "views" / "gradcam.py", title="Grad-CAM", icon=":material/local_fire_department:", url_path="gradcam"),
    st.Page(HERE / "views" / "predict.py", title="Predict", icon=":material/photo_camera:", url_path="predict"),
    st.Page(HERE / "views" / "webcam.py", title="Webcam", icon=":material/videocam:", url_path="webcam"),
])
page.run()
