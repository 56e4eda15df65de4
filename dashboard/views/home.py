"""Overview: the FER2013 class distribution per split and the run leaderboard."""
import altair as alt
import streamlit as st

from common import cached_board, cached_dataset, cached_report, data_path, runs_dir
from fer.data import DataError
from fer.runs.store import BOARD_COLUMNS


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
    report = cached_report(path)
    counts = report.counts
    cols = st.columns(3)
    cols[0].metric("Images", f"{len(data):,}")
    cols[1].metric("Splits", ", ".join(counts.index))
    cols[2].metric("Imbalance (Training, max/min)", f"{report.imbalance.get('Training', float('nan')):.1f}×")
    if data.report.n_skipped or data.report.notes:
        st.info(f"Load report: {data.report.summary()}")
    long = counts.drop(columns="total").reset_index().melt(id_vars="split", var_name="class", value_name="images")
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("class:N", sort=list(data.class_names)), y="images:Q", color="split:N",
        xOffset="split:N", tooltip=["split", "class", "images"])
    st.altair_chart(chart, width="stretch")
    st.dataframe(counts, key="counts_table")

st.header("Runs")
runs = cached_board(runs_dir())  # with the shipped model, as on the Runs page
if (runs["source"] == "local").sum() == 0 if not runs.empty else True:
    st.info("No runs of your own yet: start one on the Train page or with `fer train` (see the README)."
            + (" The model that ships with fer-studio is listed below." if not runs.empty else ""))
if not runs.empty:
    st.dataframe(runs[[c for c in BOARD_COLUMNS if c in runs.columns]].rename(columns={"label": "name"}),
                 key="runs_table", hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="percent")
                                for c in ("test_acc", "test_macro_f1", "best_val_acc")})
