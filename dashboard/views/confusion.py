"""Confusion: a run's confusion matrix (counts / row-normalised), per-class scores, its calibration (ECE
and a reliability diagram before/after temperature scaling), two runs side by side with their
difference, and the most confident mistakes per true/predicted pair."""
from pathlib import Path

import altair as alt
import streamlit as st

from common import cached_board, cached_dataset, data_path, runs_dir
from fer.data import DataError
from fer.runs.compare import (confident_mistakes, confusion_difference, confusion_frame, evaluations, face_images,
                              per_class_frame, reliability)


def heatmap(frame, title: str, diverging: bool = False) -> alt.Chart:
    long = frame.reset_index().melt(id_vars="true", var_name="predicted", value_name="value")
    order = list(frame.index)
    scale = alt.Scale(scheme="redblue", domainMid=0, reverse=True) if diverging else alt.Scale(scheme="blues")
    base = alt.Chart(long, title=title).encode(x=alt.X("predicted:N", sort=order), y=alt.Y("true:N", sort=order))
    fmt = ".2f" if frame.values.max() <= 1.0 else ".0f"
    side = 44 * len(order)  # square cells, readable labels: a 7×7 matrix is ~310 px wide
    return (base.mark_rect().encode(color=alt.Color("value:Q", scale=scale), tooltip=["true", "predicted", "value"])
            + base.mark_text(fontSize=11).encode(text=alt.Text("value:Q", format=fmt))).properties(width=side, height=side)


st.title("Confusion")
board = cached_board(runs_dir())
evaluated = board[board["test_acc"].notna()] if not board.empty else board
if evaluated.empty:
    st.info("No evaluated runs yet: a run is evaluated on its test split when training completes.")
    st.stop()
# Widgets show and return labels (the runs' unique names); `paths` maps them to run folders.
paths = dict(zip(evaluated["label"], evaluated["path"]))
run_a = st.selectbox("Run", list(paths), key="confusion_run")
evals_a = evaluations(Path(paths[run_a]))
splits = list(evals_a)
split = st.selectbox("Split", splits, key="confusion_split",
                     index=next((i for i, s in enumerate(splits) if s != "val"), 0))  # the test split first
normalize = st.toggle("Row-normalised (recall per true class)", value=True, key="confusion_normalize")
evaluation = evals_a[split]
cols = st.columns(4)
cols[0].metric("Accuracy", f"{evaluation['accuracy']:.2%}")
cols[1].metric("Macro-F1", f"{evaluation['macro_f1']:.3f}")
cols[2].metric("Images", f"{evaluation['n']:,}")
temperature = float(evaluation.get("temperature", 1.0))
if "ece" in evaluation:
    cols[3].metric("Calibration error (ECE)", f"{evaluation['ece']:.3f}",
                   delta=f"{evaluation['ece'] - evaluation['ece_uncalibrated']:+.3f} by T = {temperature:.2f}"
                   if temperature != 1.0 else None, delta_color="inverse")
left, right = st.columns([3, 2])
left.altair_chart(heatmap(confusion_frame(evaluation, normalize), f"{run_a} on {split}"), key="confusion_a")
right.dataframe(per_class_frame(evaluation), key="confusion_per_class", placeholder="")

with st.expander("Calibration: reliability diagram", expanded=False):
    bins = reliability(Path(paths[run_a]), split, temperature)
    if bins.empty or "ece" not in evaluation:
        st.caption("Not available for this evaluation (evaluate the run again with fer eval).")
    else:
        st.caption(f"Confidence vs accuracy per confidence bin on {split}: on the diagonal, a face called at 80% "
                   "is right 80% of the time. " + (f"Temperature {temperature:.2f}, fitted on validation after "
                                                   "training, is what Predict and Webcam apply." if temperature != 1.0
                                                   else "This run has no fitted temperature."))
        shown = bins[bins["count"] > 0]
        diagonal = alt.Chart(shown).mark_line(color="gray", strokeDash=[4, 4]).encode(x="confidence:Q",
                                                                                      y="confidence:Q")
        st.altair_chart(diagonal + alt.Chart(shown).mark_line(point=True).encode(
            x=alt.X("confidence:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])),
            color="version:N", tooltip=["version", "bin_low", "bin_high", "count", "confidence", "accuracy"]),
            key="confusion_reliability")

others = [r for r in paths if r != run_a]
run_b = st.selectbox("Compare with", ["(none)", *others], key="confusion_run_b")
if run_b != "(none)":
    evals_b = evaluations(Path(paths[run_b]))
    if split in evals_b:
        if evals_b[split]["n"] != evaluation["n"]:
            st.warning(f"{run_a} was scored on {evaluation['n']:,} {split} images and {run_b} on "
                       f"{evals_b[split]['n']:,}: the matrices do not compare directly.")
        c1, c2 = st.columns(2)
        c1.altair_chart(heatmap(confusion_frame(evals_b[split], normalize), f"{run_b} on {split}"),
                        key="confusion_b")
        c2.altair_chart(heatmap(confusion_difference(evaluation, evals_b[split]),
                                f"{run_b} − {run_a} (row-normalised)", diverging=True),
                        key="confusion_diff")
    else:
        st.warning(f"{run_b} has no evaluation on {split}.")

st.subheader("Most confident mistakes")
names = evaluation["class_names"]
pair = st.columns(2)
true = pair[0].selectbox("True class", ["(any)", *names], key="confusion_true")
pred = pair[1].selectbox("Predicted class", ["(any)", *names], key="confusion_pred")
mistakes = confident_mistakes(Path(paths[run_a]), split, None if true == "(any)" else true,
                              None if pred == "(any)" else pred)
if mistakes.empty:
    st.info("No such mistakes (or no per-image predictions stored for this split).")
else:
    try:
        data = cached_dataset(data_path())
        faces = face_images(data, mistakes["source"])
    except DataError:
        faces = []
    if len(faces) == len(mistakes):
        st.image(faces, width=96, caption=[f"{t}→{p} {c:.0%}" for t, p, c in
                                             zip(mistakes["true"], mistakes["pred"], mistakes["confidence"])])
    else:
        st.caption("The images are not in the current data source; showing the table only.")
    st.dataframe(mistakes[["source", "true", "pred", "confidence"]], hide_index=True, key="confusion_mistakes",
                 placeholder="")
