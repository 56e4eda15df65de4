"""Data: the FER2013 source, class distribution per split, imbalance, sample faces, pixel statistics,
mean faces and the duplicate / cross-split leakage report (computed once per source, then cached)."""
import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from common import cached_dataset, cached_report, data_path
from fer.data import DataError
from fer.data.stats import sample_faces

HOW_TO = """
**Getting FER2013.** Download it from Kaggle, either as `fer2013.csv` (the *Challenges in Representation
Learning: Facial Expression Recognition* competition: columns `emotion`, `pixels`, `Usage`) or as the
image-folder release (`train/<class>/*.jpg`, `test/<class>/*.jpg`). Put it in `data/`, set `FER_DATA`,
or type its path in the sidebar. Both layouts are read the same way; the decoded faces are cached.
"""


st.title("Data")
path = data_path()
try:
    data = cached_dataset(path)
except DataError as e:
    st.warning(f"No FER2013 data found: {e}")
    st.markdown(HOW_TO)
    st.stop()

stats = cached_report(path)
counts = stats.counts
cols = st.columns(3 + len(stats.imbalance))
cols[0].metric("Images", f"{len(data):,}")
cols[1].metric("Source", data.origin.rsplit("/", 1)[-1] or data.origin, help=data.origin)
cols[2].metric("Skipped files", data.report.n_skipped)
for col, (split, ratio) in zip(cols[3:], stats.imbalance.items()):  # one short figure per split
    col.metric(f"Imbalance, {split}", f"{ratio:.1f}×", help="largest class / smallest class")
if data.report.n_skipped or data.report.notes:
    st.info(f"Load report: {data.report.summary()}")

st.subheader("Class distribution")
long = counts.drop(columns="total").reset_index().melt(id_vars="split", var_name="class", value_name="images")
share = st.toggle("Share of the split instead of counts", key="data_share")
if share:
    long["images"] = long["images"] / long.groupby("split")["images"].transform("sum")
st.altair_chart(alt.Chart(long).mark_bar().encode(
    x=alt.X("class:N", sort=list(data.class_names)), y=alt.Y("images:Q", title="share" if share else "images"),
    color="split:N", xOffset="split:N", tooltip=["split", "class", "images"]), key="data_distribution")
st.dataframe(counts, key="data_counts", placeholder="")

st.subheader("Samples per class")
per_class = st.slider("Faces per class", 4, 16, 8, key="data_per_class")
seed = st.number_input("Sample seed", 0, 10_000, 0, key="data_seed")
samples = sample_faces(data, per_class, stats.split, int(seed))
for name, faces in samples.items():
    if len(faces):
        st.image(list(faces), width=64, caption=[name] + [""] * (len(faces) - 1))

st.subheader("Pixels")
px = stats.pixels
c1, c2 = st.columns([2, 1])
hist = pd.DataFrame({"intensity": np.arange(256), "pixels": px["histogram"]})
# A log scale: FER2013 has a spike at 255 (saturated and padded faces) that would flatten everything else.
# A step line, not an area: an area's baseline is 0, which a log scale cannot draw (the chart came out empty).
c1.altair_chart(alt.Chart(hist[hist["pixels"] > 0]).mark_line(interpolate="step-after").encode(
    x=alt.X("intensity:Q", scale=alt.Scale(domain=[0, 255])),
    y=alt.Y("pixels:Q", scale=alt.Scale(type="log"), title="pixels (log scale)")), key="data_histogram")
c2.metric(f"Mean ({px['split']})", f"{px['mean']:.1f}  ({px['mean_01']:.4f})")
c2.metric("Std", f"{px['std']:.1f}  ({px['std_01']:.4f})")
st.caption("Mean faces per class")
st.image([np.clip(m, 0, 255).astype(np.uint8) for m in stats.mean_faces], width=96,
         caption=list(data.class_names))

st.subheader("Duplicates and leakage")
leak = stats.leakage
c = st.columns(4)
c[0].metric("Duplicate groups", leak["duplicate_groups"])
c[1].metric("Images in them", leak["duplicate_images"])
c[2].metric("Groups across splits", leak["cross_split_groups"])
c[3].metric("Groups with conflicting labels", leak["conflicting_label_groups"])
if leak["cross_split_pairs"]:
    st.write("Groups shared by split pairs: " + ", ".join(f"{k}: {v}" for k, v in leak["cross_split_pairs"].items()))
dups = stats.duplicates
if not dups.empty:
    conflicting = dups.groupby("group")["label"].transform("nunique") > 1
    st.dataframe(dups[conflicting].head(200), hide_index=True, key="data_conflicts", placeholder="")
