"""What every page shares: the sidebar's folders, cached loaders, and the "no model" guard.

Loaders are cached once for the whole server, so moving between pages never decodes FER2013 or
loads a model twice: datasets and models with `st.cache_resource`, the leaderboard (a table that
changes while jobs run) with a short-lived `st.cache_data`.
"""
import pandas as pd
import streamlit as st

from fer.classifiers import available_models, load_ensemble
from fer.data import FaceData, default_data_path, load_fer2013
from fer.pipeline import Classifier
from fer.runs import default_runs_dir, list_runs


def data_path() -> str:
    """The FER2013 source chosen in the sidebar."""
    return st.session_state.get("data_path") or str(default_data_path())


def runs_dir() -> str:
    """The runs folder chosen in the sidebar."""
    return st.session_state.get("runs_dir") or str(default_runs_dir())


@st.cache_resource(show_spinner="Loading FER2013…")
def cached_dataset(path: str) -> FaceData:
    """FER2013 from `path`, decoded once per server (raises DataError when there is none)."""
    return load_fer2013(path)


@st.cache_data(ttl=5, show_spinner=False)
def cached_board(folder: str, include_default: bool = True) -> pd.DataFrame:
    """The leaderboard of `folder` (re-read at most every 5 s while jobs run)."""
    return list_runs(folder or None, include_default=include_default)


@st.cache_resource(show_spinner="Loading the model…")
def cached_classifier(names: tuple, folder: str, tta: str = "none") -> Classifier:
    """One model, or the ensemble of several, by their UI names ("default" = the shipped model)."""
    return load_ensemble(list(names), folder or None, tta)


def model_choices() -> list:
    """The models a page can use; stops the page with an error when there is none."""
    choices = available_models(runs_dir())
    if not choices:
        st.error("No model is available: the shipped default model is missing and there are no runs.")
        st.stop()
    return choices
