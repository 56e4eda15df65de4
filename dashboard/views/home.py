"""Overview: where to start, what the chosen data holds in three numbers, and the leaderboard."""
from pathlib import Path

import streamlit as st

from access import actor
from common import cached_board, cached_dataset, cached_report, data_path, runs_dir
from fer.data import DataError
from fer.runs.store import BOARD_COLUMNS

HERE = Path(__file__).parent

st.title("fer-studio")
st.write("A workbench for facial expression recognition on FER2013: train, compare, explain.")

st.header("Start here")
first = st.columns(3)
with first[0].container(border=True):
    st.markdown("**Try the shipped model**\n\nUpload a photo: every face gets its emotion. No training needed.")
    st.page_link(str(HERE / "predict.py"), label="Predict a photo", icon=":material/photo_camera:")
with first[1].container(border=True):
    st.markdown("**Train a first run**\n\nStart from the *quick* preset: a 5,000-face sample, about two minutes.")
    if actor().is_operator:  # viewers have no Train page
        st.page_link(str(HERE / "train.py"), label="Open the Train page", icon=":material/rocket_launch:")
    else:
        st.caption("Training needs an operator's sign-in; `fer train --config quick` does it from a shell.")
with first[2].container(border=True):
    st.markdown("**Look at the data**\n\nClass counts, imbalance, sample faces, duplicates and leakage.")
    st.page_link(str(HERE / "data.py"), label="Open the Data page", icon=":material/dataset:")

path = data_path()
st.header("Data")
try:
    data = cached_dataset(path)
except DataError as e:
    st.warning(f"No FER2013 data found: {e}")
    st.markdown(
        "Get FER2013 from [Kaggle](https://www.kaggle.com/datasets/msambare/fer2013) — the image-folder release "
        "(`train/<class>/`, `test/<class>/`) or `fer2013.csv` — and put it in `data/`, or set `FER_DATA` "
        "(the sidebar offers the sources the server's settings name).")
else:
    report = cached_report(path)
    cols = st.columns(3)
    cols[0].metric("Images", f"{len(data):,}")
    cols[1].metric("Splits", ", ".join(report.counts.index))
    cols[2].metric("Imbalance (Training, max/min)", f"{report.imbalance.get('Training', float('nan')):.1f}×")
    if data.report.n_skipped or data.report.notes:
        st.info(f"Load report: {data.report.summary()}")

st.header("Runs")
runs = cached_board(runs_dir())  # with the shipped model, as on the Runs page
if (runs["source"] == "local").sum() == 0 if not runs.empty else True:
    st.info("No runs of your own yet: start one on the Train page or with `fer train` (the *quick* preset is a good first one)."
            + (" The model that ships with fer-studio is listed below." if not runs.empty else ""))
if not runs.empty:
    st.dataframe(runs[[c for c in BOARD_COLUMNS if c in runs.columns]].rename(columns={"label": "name"}),
                 key="runs_table", hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="percent")
                                for c in ("test_acc", "test_macro_f1", "best_val_acc")}, placeholder="")
