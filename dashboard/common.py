"""What every page shares: the sidebar's choices, cached loaders, and the "no model" guard.

Loaders are cached once for the whole server, so moving between pages never decodes FER2013 or
loads a model twice: datasets and models with `st.cache_resource`, the leaderboard (a table that
changes while jobs run) with a short-lived `st.cache_data`.
"""
from typing import TYPE_CHECKING, Dict, List

import pandas as pd
import streamlit as st

from fer.core.settings import ServerSettings
from fer.data import FaceData, default_data_path, load_fer2013
from fer.data.cache import is_cached
from fer.data.stats import DatasetReport, dataset_report
from fer.inference.averaging import DEFAULT_TTA
# Models (PyTorch, ONNX Runtime, OpenCV) load inside the functions that need one: the pages without a model
# (Overview, Data, Runs, Train, Studies, Sweeps) start without importing PyTorch.
if TYPE_CHECKING:
    from fer.inference.pipeline import Classifier
from fer.runs.store import default_runs_dir, list_runs


# What makes Markdown (and Streamlit's own :red[...] and :material/...: directives) out of plain text:
# links and images, emphasis, code, headings, HTML, maths. Escaped, each shows as itself.
_MARKDOWN = set("\\`*_[]()!<>#:$~|&")


def plain(text: object) -> str:
    """A run name, tag or file name shown as itself inside Markdown: never a link, an image or a heading."""
    return "".join("\\" + ch if ch in _MARKDOWN else ch for ch in str(text)).replace("\n", " ")


def upload_limit_bytes() -> int:
    """The upload size cap of `.streamlit/config.toml` (server.maxUploadSize, MB), checked again by pages."""
    return int(st.get_option("server.maxUploadSize")) * 1024 * 1024


def _places(settings: ServerSettings) -> Dict[str, List[str]]:
    """The folders a visitor may choose among: the server's lists, or its defaults."""
    return {"runs_dir": list(settings.runs_dirs) or [str(default_runs_dir())],
            "data_path": list(settings.data_sources) or [str(default_data_path())]}


def choose_places(settings: ServerSettings) -> None:
    """The sidebar's data source and runs folder: picked among the server's, never typed by a visitor."""
    places = _places(settings)
    for key, options in places.items():
        if st.session_state.get(key) not in options:  # a stale or forged choice falls back to the default
            st.session_state[key] = options[0]
    st.session_state["fer_places"] = places
    st.selectbox("FER2013 source", places["data_path"], key="data_path", disabled=len(places["data_path"]) == 1)
    st.selectbox("Runs folder", places["runs_dir"], key="runs_dir", disabled=len(places["runs_dir"]) == 1)


def _chosen(key: str) -> str:
    allowed = st.session_state.get("fer_places", {}).get(key) or []
    value = st.session_state.get(key)
    return value if value in allowed else (allowed[0] if allowed else "")


def data_path() -> str:
    """The FER2013 source chosen in the sidebar (one of the server's)."""
    return _chosen("data_path")


def runs_dir() -> str:
    """The runs folder chosen in the sidebar (one of the server's)."""
    return _chosen("runs_dir")


@st.cache_resource(show_spinner="Loading FER2013…", max_entries=4)
def _cached_dataset(path: str) -> FaceData:
    return load_fer2013(path)


_DECODED: set = set()  # sources known to have fer's decoded cache (this module lives as long as the server)


def cached_dataset(path: str) -> FaceData:
    """FER2013 from `path`, loaded once per server (raises DataError when there is none).

    The very first load of a source decodes every image (tens of seconds for the CSV on a busy machine):
    that happens here, outside Streamlit's cache, with a progress bar; later loads read fer's cache.
    """
    if path not in _DECODED:
        if not is_cached(path):
            bar = st.progress(0.0, text="Decoding FER2013 for the first time (later loads take a second)…")
            load_fer2013(path, progress=lambda share, message: bar.progress(share, text=message))
            bar.empty()
        _DECODED.add(path)
    return _cached_dataset(path)


@st.cache_data(show_spinner="Computing statistics…", max_entries=4)
def cached_report(path: str) -> DatasetReport:
    """The source's statistics (what the Overview and the Data page show), computed once per source."""
    return dataset_report(cached_dataset(path))


@st.cache_data(ttl=5, show_spinner=False, max_entries=16)
def cached_board(folder: str, include_default: bool = True) -> pd.DataFrame:
    """The leaderboard of `folder` (re-read at most every 5 s while jobs run)."""
    return list_runs(folder or None, include_default=include_default)


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _cached_classifier(names: tuple, folder: str, tta: str = DEFAULT_TTA, backend: str = "torch",
                       threads: int = 0) -> "Classifier":
    from fer.inference.classifiers import load_ensemble

    options = {"backend": backend, **({"threads": threads} if threads else {})}
    return load_ensemble(list(names), folder or None, tta, **options)


def cached_classifier(names: tuple, folder: str, tta: str = DEFAULT_TTA, backend: str = "torch",
                      threads: int = 0) -> "Classifier":
    """One model, or the ensemble of several, by their UI names ("default" = the shipped model).

    `backend` "auto" runs CNNs on the fastest available engine (fer.inference.onnx: ONNX Runtime, int8 where
    the run has an int8 export); Grad-CAM needs "torch". `threads` sets ONNX Runtime's intra-op threads.

    A model file that turns out unreadable stops the page with one line saying why (the other pages
    and runs are unaffected); nothing from it is cached.
    """
    try:
        return _cached_classifier(names, folder, tta, backend, threads)
    except Exception as e:  # noqa: BLE001 - any model file problem stops this page only, in one line
        message = " ".join(str(e).split())[:300] if isinstance(e, (ValueError, OSError)) else type(e).__name__
        st.error(plain(f"This model cannot be loaded: {message}"))
        st.stop()


def run_labels() -> Dict[str, str]:
    """run id -> how the run is shown everywhere: its name, unique in the leaderboard ("default": shipped)."""
    board = cached_board(runs_dir())
    return dict(zip(board["run_id"], board["label"])) if not board.empty else {}


def model_choices() -> Dict[str, str]:
    """The models a page can use, label -> run id ("default" first); stops the page when there is none.

    Widgets show and return the labels (unique names), and pages map them back to run ids.
    """
    from fer.inference.classifiers import available_models, unusable_models

    ids = available_models(runs_dir())
    broken = unusable_models(runs_dir())
    if broken:
        labels = run_labels()
        st.warning("Not offered, their model files cannot load: " +
                   "; ".join(f"{labels.get(run_id, run_id)} ({why})" for run_id, why in broken.items()))
    if not ids:
        st.error("No model is available: the shipped default model is missing and there are no runs.")
        st.stop()
    labels = run_labels()
    return {labels.get(run_id, run_id): run_id for run_id in ids}
