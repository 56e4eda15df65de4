"""Sweeps: an Optuna study's trials (from `fer sweep`), its optimisation history, fANOVA parameter
importances, a parallel-coordinates plot of the trials, and "launch the best trial as a full run".

The study is read from its storage (SQLite in the runs folder's sweeps/, or an RDB URL); each trial
is an ordinary run on the Runs page, tagged `sweep:NAME`. Launching the best trial queues a new run
through the same job queue as the Train page.
"""
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from access import actor, server_settings
from common import data_path, runs_dir
from fer.core.errors import UserError
from fer.jobs import actions
from fer.jobs.sweeps.study import (METRIC, SweepError, best_config, definition, history, importances, list_sweeps,
                                   load_study, parallel_coordinates, reproduce_command, require_optuna, summary,
                                   trials_table)
from fer.training.validate import check_config

st.title("Sweeps")
folder = runs_dir()
try:
    require_optuna()
except SweepError as e:
    st.info(f"{e}. Then start one with `fer sweep --config base.yaml --space space.yaml --trials 20`.")
    st.stop()


@st.cache_data(ttl=5, show_spinner=False, max_entries=16)
def sweep_tables(name: str, folder: str, storage: str) -> dict:
    """Everything the page draws for one study, read once per few seconds (a sweep may be running)."""
    study = load_study(name, Path(folder), storage or None)
    return {"summary": summary(study), "trials": trials_table(study), "history": history(study),
            "importances": importances(study), "parallel": parallel_coordinates(study),
            "command": reproduce_command(study, Path(folder)),
            "epochs": definition(study)["base"]["train"]["epochs"]}


names = list_sweeps(folder)
storages = server_settings().sweep_storages  # the server's list: a visitor never types a database URL
storage, other = "", ""
if storages:
    with st.expander("A study in another storage (an RDB shared by several machines)"):
        storage = st.selectbox("Storage", ["", *storages], key="sweeps_storage",
                               format_func=lambda s: s.split("@")[-1] if s else "this runs folder's sweeps")
        other = st.text_input("Study name", key="sweeps_other_name")
if storage and other:
    name = other
elif names:
    name = st.selectbox("Sweep", names, key="sweeps_name")
    storage = ""
else:
    st.info(f"No sweeps in `{folder}` yet. Start one with `fer sweep --config base.yaml --space space.yaml "
            "--trials 20 --jobs 2` (add `--ray` to run the trials on a Ray cluster).")
    st.stop()

try:
    tables = sweep_tables(name, folder, storage)
except UserError as e:
    st.error(str(e))
    st.stop()
facts, trials = tables["summary"], tables["trials"]
states = facts["states"]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Trials", facts["trials"])
c2.metric("Completed", states.get("complete", 0))
c3.metric("Pruned", states.get("pruned", 0))
c4.metric("Best val accuracy", f"{facts['best']['value']:.1%}" if facts["best"] else "–")
settings = facts["settings"]
st.caption(f"Pruner {settings.get('pruner')} · target {settings.get('trials')} trials, {settings.get('jobs')} at a "
           f"time · maximises the best validation accuracy of each trial's run")

left, right = st.columns(2)
with left:
    st.subheader("Optimisation history")
    steps = tables["history"]
    if steps.empty:
        st.caption("No finished trial yet.")
    else:
        points = alt.Chart(steps).mark_circle(size=60).encode(
            x=alt.X("trial:Q", axis=alt.Axis(format="d", tickMinStep=1)),  # trials are whole numbers
            y=alt.Y("value:Q", title="best val accuracy", scale=alt.Scale(zero=False)),
            color=alt.Color("state:N"), tooltip=["trial", "state", alt.Tooltip("value:Q", format=".4f")])
        best_line = alt.Chart(steps).mark_line(interpolate="step-after").encode(x="trial:Q", y="best so far:Q")
        st.altair_chart(points + best_line, width="stretch")
with right:
    st.subheader("Parameter importance (fANOVA)")
    found = tables["importances"]
    if not found:
        st.caption("Needs at least two completed trials whose parameters and scores differ.")
    else:
        bars = pd.DataFrame({"parameter": list(found), "importance": list(found.values())})
        st.altair_chart(alt.Chart(bars).mark_bar().encode(
            x=alt.X("importance:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("parameter:N", sort="-x", axis=alt.Axis(labelLimit=400)),  # whole setting names
            tooltip=["parameter", alt.Tooltip("importance:Q", format=".3f")]), width="stretch")

st.subheader("Trials in parallel coordinates")
lines = tables["parallel"]
if lines.empty:
    st.caption("No finished trial yet.")
else:
    axes = [a for a in lines["axis"].unique() if a != METRIC] + [METRIC]
    st.altair_chart(alt.Chart(lines).mark_line(point=True, opacity=0.7).encode(
        x=alt.X("axis:N", sort=axes, title=None, axis=alt.Axis(labelLimit=400, labelAngle=-30)),
        y=alt.Y("position:Q", title="low → high", axis=None),
        color=alt.Color("value:Q", title="val accuracy", scale=alt.Scale(scheme="viridis")),
        strokeDash=alt.StrokeDash("state:N"), detail="trial:N",
        tooltip=["trial", "state", "axis", "label"]), width="stretch")

st.subheader("Trials")
st.dataframe(trials, hide_index=True, width="stretch", key="sweeps_trials", placeholder="")

st.subheader("Best trial → a full run")
if facts["best"] is None:
    st.caption("No completed trial yet.")
else:
    best = facts["best"]
    st.write(f"Trial {best['trial']} (run `{best['run']}`): " + ", ".join(f"`{k}` = {v}" for k, v in
                                                                       best["params"].items()))
    st.code(tables["command"], language="bash")
    epochs = st.number_input("Epochs for the full run", 1, 1000, int(tables["epochs"]), key="sweeps_best_epochs")
    if st.button("Launch a full run with these settings", type="primary", key="sweeps_launch_best"):
        try:
            best_cfg = best_config(load_study(name, Path(folder), storage or None), int(epochs))
            best_cfg.data.path, best_cfg.runs_dir = data_path(), folder  # the sidebar's choices, as every launch
            run_dir = actions.launch(actor(), check_config(best_cfg), folder, server_settings(), data_path())
        except (UserError, ValueError) as e:
            st.error(f"Not launched: {e}")
        else:
            st.toast(f"Queued {run_dir.name}: the background worker trains it (see Train and Runs).")
