"""Overview: the FER2013 class distribution per split and the run leaderboard."""
import altair as alt
import pandas as pd
import streamlit as st

from common import cached_board, cached_dataset, data_path, runs_dir
from fer.data import DataError
from fer.data.stats import class_counts, imbalance_ratio


@st.cache_data
def cached_counts(path: str) -> pd.DataFrame:
    return class_counts(cached_dataset(path))


st.title("fer-studio")
st.write("A workbench for facial expression recognition on FER2013: train, compare, explain.")

path = data_path()
st.header("Data")
try:
    data = cached_dataset(path)
except DataError as e:
    st.warning(f"No FER2013 data found: {e}")
    st.markdown(
        "Get FER2013 from Kaggle — either `fer2013.csv` (challenges-in-representation-learning) or the "
        "image-folder release (`train/<class>/`, `test/<class>/`) — and put it in `data/`, or set `FER_DATA`, "
        "or type its path in the sidebar.")
else:
    counts = cached_counts(path)
    cols = st.columns(3)
    cols[0].metric("Images", f"{len(data):,}")
    cols[1].metric("Splits", ", ".join(counts.index))
    cols[2].metric("Imbalance (Training, max/min)", f"{imbalance_ratio(data, 'Training'):.1f}×")
    if data.report.n_skipped or data.report.notes:
        st.info(f"Load report: {data.report.summary()}")
    long = counts.drop(columns="total").reset_index().melt(id_vars="split", var_name="class", value_name="images")
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("class:N", sort=list(data.class_names)), y="images:Q", color="split:N",
        xOffset="split:N", tooltip=["split", "class", "images"])
    st.altair_chart(chart, width="stretch")
    st.dataframe(counts, key="counts_table")

st.header("Runs")
runs = cached_board(runs_dir(), include_default=False)
if runs.empty:
    st.info("No runs yet. Start one with `fer train` (see the README).")
else:
    st.dataframe(runs[[c for c in ["run_id", "name", "status", "model", "optimizer", "scheduler", "epochs_done",
                                   "best_val_acc", "test_acc", "test_macro_f1"] if c in runs.columns]],
                 key="runs_table", hide_index=True)
