"""fer-studio dashboard: the sign-in gate, the `st.navigation` router and the shared sidebar.

Run with `fer dashboard` (or `streamlit run dashboard/app.py`). Every page is a thin view over the
`fer` package; what pages share (cached loaders, the sidebar's choices) lives in `common.py`, who is
visiting in `access.py`. Viewers see the data, runs and inference pages; operators also train and sweep.
"""
import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # pages import `common` from this folder, whoever started the app
    sys.path.insert(0, str(HERE))

from access import gate, server_settings, sign_out  # noqa: E402
from common import choose_places  # noqa: E402
from fer.jobs.machine import machine_summary  # noqa: E402
from fer.runs.release import default_model_summary  # noqa: E402

@st.cache_data(ttl=60, show_spinner=False, max_entries=1)
def cached_machine_summary() -> str:
    """The machine in a few words (no PyTorch: pages that need no model never import it)."""
    return machine_summary()


st.set_page_config(page_title="fer-studio", page_icon="🙂", layout="wide")
settings = server_settings()
visitor = gate(settings)  # the sign-in page, and nothing else, until the visitor has signed in

with st.sidebar:
    choose_places(settings)
    st.caption(f"Default model: {default_model_summary()}")
    st.caption(f"Machine: {cached_machine_summary()}")
    st.caption(f"Signed in: {visitor.identity} ({visitor.role})")
    if visitor.identity != "local":
        st.button("Sign out", on_click=sign_out, key="sign_out")


def page(file: str, title: str, icon: str, **kwargs) -> st.Page:
    return st.Page(HERE / "views" / file, title=title, icon=f":material/{icon}:", **kwargs)


experiments = [page("runs.py", "Runs", "leaderboard", url_path="runs"),
               page("studies.py", "Studies", "menu_book", url_path="studies"),
               page("confusion.py", "Confusion", "grid_on", url_path="confusion"),
               page("gradcam.py", "Grad-CAM", "local_fire_department", url_path="gradcam")]
if visitor.is_operator:  # launching, steering the queue and sweeping: operators only
    experiments[:0] = [page("train.py", "Train", "rocket_launch", url_path="train")]
    experiments.insert(3, page("sweeps.py", "Sweeps", "tune", url_path="sweeps"))
# Pages live in views/, not pages/: Streamlit would auto-list a pages/ folder beside st.navigation's menu.
st.navigation({
    "Data": [page("home.py", "Overview", "home", default=True), page("data.py", "Data", "dataset", url_path="data")],
    "Experiments": experiments,
    "Inference": [page("predict.py", "Predict", "photo_camera", url_path="predict"),
                  page("video.py", "Video", "movie", url_path="video"),
                  page("webcam.py", "Webcam", "videocam", url_path="webcam")],
}).run()
