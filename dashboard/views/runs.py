"""Runs: the leaderboard with filters, overlaid curves, config diff, hyperparameters vs accuracy, suites, edits.

Runs appear by name everywhere (made unique with the end of the id where names repeat), accuracy first,
with the size of the test set each was scored on, and a warning when a comparison mixes test sets."""
from pathlib import Path

import altair as alt
import streamlit as st

from access import actor, server_settings
from common import cached_board, data_path, plain, runs_dir
from fer.config import ConfigError
from fer.core.errors import UserError
from fer.data import DataError
from fer.jobs import actions
from fer.jobs.suites import SUITES, suite_report
from fer.runs.compare import axis_ticks, axis_titles, config_diff, curves, mixed_test_sets, parallel_coordinates
from fer.runs.identity import read_audit, trashed_runs
from fer.runs.store import BOARD_COLUMNS

SHOWN_COLUMNS = BOARD_COLUMNS[:-1] + ["train_val_gap", "train_seconds", "run_id"]
# More lines than this are a blur, and each visitor's browser would draw them all.
CHART_RUNS = 300
# Every visitor's browser builds each option of a picker. In a one-off check with 20 tabs, a page with the
# board plus a 5,000-option picker took 21 s, against 14 s without the picker. The filters reach the rest.
PICKER_RUNS = 200
HYPERPARAMETERS = ["config.model.name", "config.optim.name", "config.optim.lr", "config.optim.weight_decay",
                   "config.train.batch_size", "config.train.epochs", "config.augmentation", "config.loss.label_smoothing"]


st.title("Runs")
folder = runs_dir()
board = cached_board(folder)
if board.empty:
    st.info("No runs yet. Start one on the Train page or with `fer train`.")
    st.stop()

suite_of = board["tags"].fillna("").map(lambda t: next((x[6:] for x in t.split(",") if x.startswith("suite:")), ""))
filters = st.columns(4)
models = filters[0].multiselect("Model", sorted(board["model"].dropna().unique()), key="runs_filter_model")
optimizers = filters[1].multiselect("Optimizer", sorted(board["optimizer"].dropna().unique()), key="runs_filter_opt")
statuses = filters[2].multiselect("Status", sorted(board["status"].dropna().unique()), key="runs_filter_status")
tag_text = filters[3].text_input("Name, tag or suite contains", key="runs_filter_tag")
view = board
if models:
    view = view[view["model"].isin(models)]
if optimizers:
    view = view[view["optimizer"].isin(optimizers)]
if statuses:
    view = view[view["status"].isin(statuses)]
if tag_text:
    view = view[view["tags"].fillna("").str.contains(tag_text, regex=False)
                | view["label"].fillna("").str.contains(tag_text, regex=False)]
shown = view[[c for c in SHOWN_COLUMNS if c in view.columns]].rename(columns={"label": "name"})
st.dataframe(shown, hide_index=True, key="runs_board",
             column_config={c: st.column_config.NumberColumn(format="percent") for c in
                            ("test_acc", "test_macro_f1", "best_val_acc", "train_val_gap")}, placeholder="")
st.caption(f"{len(view)} of {len(board)} runs; click a column header to sort.")
if (warning := mixed_test_sets(view)) is not None:
    st.warning(warning)
if "problem" in board and board["problem"].notna().any():
    broken = board[board["problem"].notna()]
    st.warning(f"{len(broken)} run folder{'s' if len(broken) > 1 else ''} with damaged files: " +
               "; ".join(f"{plain(r.label)}: {plain(r.problem)}" for r in broken.itertuples()))

labels = dict(zip(board["run_id"], board["label"]))


def run_path(label: str) -> Path:
    """The folder of the run shown as `label` (widgets show and return labels: unique names)."""
    return Path(board.loc[board["label"] == label, "path"].iloc[0])


pickable = list(view["label"][:PICKER_RUNS])  # the board is sorted best first
chosen = st.multiselect("Compare runs", pickable, default=pickable[:2], key="runs_compare")
if len(view) > len(pickable):
    st.caption(f"The best {len(pickable):,} of {len(view):,} runs are offered here; filter above to pick others.")
if chosen:
    paths = [run_path(r) for r in chosen]
    if (warning := mixed_test_sets(board[board["label"].isin(chosen)])) is not None:
        st.warning(warning)
    long = curves(paths, labels)
    if not long.empty:
        metric = st.selectbox("Curve", sorted(long["metric"].unique()), key="runs_curve_metric",
                              index=sorted(long["metric"].unique()).index("val_acc") if "val_acc" in set(long["metric"]) else 0)
        st.altair_chart(alt.Chart(long[long["metric"] == metric]).mark_line(point=True).encode(
            x="epoch:Q", y=alt.Y("value:Q", title=metric), color="run:N", tooltip=["run", "epoch", "value"]),
            key="runs_curve_chart")
        both = long[long["metric"].isin(["train_acc", "val_acc"])]
        st.altair_chart(alt.Chart(both).mark_line().encode(
            x="epoch:Q", y="value:Q", color="run:N", strokeDash="metric:N"), key="runs_train_val_chart")
    if len(chosen) > 1:
        st.subheader("Config differences")
        st.dataframe(config_diff(paths, labels), key="runs_config_diff", placeholder="")

st.subheader("Hyperparameters vs test accuracy")
scored = view.dropna(subset=["test_acc"])
drawn = scored.head(CHART_RUNS)  # the board is sorted best first
if len(scored) > len(drawn):
    st.caption(f"The best {len(drawn):,} of {len(scored):,} scored runs; filter above to draw others.")
coords = parallel_coordinates(drawn, HYPERPARAMETERS)
if not coords.empty:
    titles = axis_titles(HYPERPARAMETERS)  # the config fields' own names, whole
    coords, ticks = coords.assign(axis=coords["axis"].map(titles)), axis_ticks(coords)
    ticks = ticks.assign(axis=ticks["axis"].map(titles))
    order = [titles[c] for c in HYPERPARAMETERS]
    x = alt.X("axis:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, labelLimit=0, orient="top"))
    lines = alt.Chart(coords).mark_line(opacity=0.6).encode(
        x=x, y=alt.Y("scaled:Q", axis=None), color=alt.Color("test_acc:Q", scale=alt.Scale(scheme="viridis")),
        detail="run_id:N", tooltip=["label", "axis", "value", alt.Tooltip("test_acc:Q", format=".1%")])
    values = alt.Chart(ticks).mark_text(align="left", dx=4, fontSize=10).encode(x=x, y="scaled:Q", text="value:N")
    st.altair_chart(lines + values, width="stretch", key="runs_parallel")  # every axis labelled with its values

suites = sorted(s for s in set(suite_of) if s and s in SUITES)
if suites:
    st.subheader("Suites: mean ± std over seeds")
    suite = st.selectbox("Suite", suites, key="runs_suite")
    st.dataframe(suite_report(suite, folder), hide_index=True, key="runs_suite_report", placeholder="")

if not actor().is_operator:
    st.stop()  # viewers look; editing, deleting and restoring are for operators

with st.expander("Average the compared runs into an ensemble"):
    st.caption("One run that every page can pick: each member's calibrated probabilities averaged, its own "
               "temperatures fitted on validation. The members must share their validation faces "
               "(train them with one data.split_seed).")
    ensemble_name = st.text_input("Name", value="ensemble", key="runs_ensemble_name")
    if st.button("Queue the ensemble", key="runs_ensemble_queue", disabled=len(chosen) < 2,
                 help="Choose two or more runs under 'Compare runs' first."):
        # Imported on click: they bring PyTorch, which this page otherwise never needs.
        from fer.training.ensemble import ensemble_config
        from fer.training.validate import check_config

        try:
            cfg = ensemble_config([str(run_path(r)) for r in chosen], ensemble_name, Path(folder), data_path())
            run_dir = actions.launch(actor(), check_config(cfg), folder, server_settings(), data_path())
        except (ConfigError, DataError, UserError, ValueError) as e:
            st.error(f"Not queued: {plain(e)}")
        else:
            cached_board.clear()
            st.toast(f"Queued {run_dir.name}: the background worker assembles and scores it.")

with st.expander("Rename, tag or delete a run"):
    local = [label for label, source in zip(view["label"], view["source"]) if source == "local"][:PICKER_RUNS]
    st.caption("Runs in this folder that the filters above show (the best "
               f"{PICKER_RUNS:,} at most); runs from other folders are edited where they live.")
    target = st.selectbox("Run", local, key="runs_edit_target")
    if target:
        row = board.loc[board["label"] == target].iloc[0]
        new_name = st.text_input("Name", value=row["name"] or "", key=f"runs_edit_name_{row['run_id']}")
        new_tags = st.text_input("Tags (comma-separated)", value=row["tags"] or "",
                                 key=f"runs_edit_tags_{row['run_id']}")
        cols = st.columns(2)
        if cols[0].button("Save", key="runs_edit_save"):
            try:
                actions.edit(actor(), run_path(target), new_name, new_tags.split(","))
            except (ValueError, UserError) as e:  # a running run, an unreadable config, a name with controls
                st.error(plain(e))
            else:
                cached_board.clear()
                st.rerun()
        confirm = cols[1].checkbox("I really want to delete it", key="runs_edit_confirm")
        if cols[1].button("Delete", key="runs_edit_delete", disabled=not confirm,
                          help="It moves to the trash below, restorable for a while."):
            try:
                actions.delete(actor(), run_path(target), server_settings().trash_days)
            except (ValueError, UserError) as e:
                st.error(plain(e))
            else:
                cached_board.clear()
                st.rerun()

trashed = trashed_runs(Path(folder))
with st.expander(f"Trash ({len(trashed)})"):
    st.caption(f"Deleted runs stay here for {server_settings().trash_days:g} days, then go for good.")
    for record in trashed:
        c1, c2 = st.columns([4, 1])
        c1.text(f"{record['name'] or record['run_id']} · deleted {record['deleted_at'] or '?'}")
        if c2.button("Restore", key=f"runs_restore_{record['run_id']}"):
            try:
                actions.restore(actor(), Path(folder), record["run_id"])
            except (ValueError, UserError) as e:
                st.error(plain(e))
            else:
                cached_board.clear()
                st.rerun()

with st.expander("Audit log"):
    log = read_audit(Path(folder))
    if log:
        st.dataframe(log, hide_index=True, key="runs_audit", placeholder="")
    else:
        st.caption("Nothing launched, cancelled, edited or deleted from the dashboard yet.")
