"""Studies: each FER2013 study's own results beside the runs of its suites, and one click to rerun it.

A study's table lists what it reported (accuracy, where it measured it, parameter counts) next to our
runs of the same variant (mean ± std over seeds) and the gap. Launching queues a study suite, or the
study's best model as one run, on the same job queue as the Train page and `fer suite run`."""
import altair as alt
import pandas as pd
import streamlit as st

from access import actor, server_settings
from common import data_path, runs_dir
from fer.core.errors import UserError
from fer.jobs import actions
from fer.jobs.suites import STUDIES, study_recipe, study_table, suite_curves, suite_report


@st.cache_data(ttl=5, show_spinner=False, max_entries=32)
def cached_study_table(key: str, folder: str) -> pd.DataFrame:
    """Reported vs ours for one study (re-read at most every 5 s while its runs train)."""
    return study_table(key, {name: suite_report(name, folder or None) for name in STUDIES.get(key).suites})


@st.cache_data(ttl=5, show_spinner=False, max_entries=32)
def cached_suite_curves(suite: str, metric: str, folder: str) -> pd.DataFrame:
    """Mean ± std learning curves per variant (re-read at most every 5 s while the runs train)."""
    return suite_curves(suite, folder or None, [metric])


CURVE_METRICS = {"val_acc": "validation accuracy", "train_acc": "train accuracy"}


def learning_curves(study) -> None:
    """Each variant's mean learning curve over its seeds, in a band of ± one standard deviation."""
    st.subheader("Learning curves")
    c1, c2 = st.columns(2)
    suite = c1.selectbox("Suite", list(study.suites), key="studies_curves_suite")
    metric = c2.selectbox("Metric", list(CURVE_METRICS), format_func=CURVE_METRICS.get, key="studies_curves_metric")
    curves = cached_suite_curves(suite, metric, folder)
    if curves.empty:
        st.caption("No completed runs of this suite yet.")
        return
    base = alt.Chart(curves).encode(x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1, format="d")),
                                    color=alt.Color("variant:N", legend=alt.Legend(labelLimit=300)))
    band = base.mark_area(opacity=0.2).encode(y="low:Q", y2="high:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y("mean:Q", title=CURVE_METRICS[metric], axis=alt.Axis(format="%"), scale=alt.Scale(zero=False)),
        tooltip=["variant", "epoch", alt.Tooltip("mean:Q", format=".1%"), alt.Tooltip("std:Q", format=".1%"), "runs"])
    st.altair_chart(band + line, use_container_width=True, key="studies_curves_chart")
    seeds = int(curves["runs"].max())
    st.caption(f"The mean over each variant's completed seeds (up to {seeds} here); the band is ± one standard "
               "deviation, so it needs two seeds or more (Seeds per variant below).")


st.title("Studies")
st.caption("The five FER2013 studies this workbench reproduces: their reported numbers beside your runs of the "
           "same models. Where a study's text is ambiguous, the reading chosen is stated below its table.")
labels = {f"Study {k.upper()}: {STUDIES.get(k).title}": k for k in STUDIES.names()}
key = labels[st.selectbox("Study", list(labels), key="studies_study")]
study = STUDIES.get(key)
folder = runs_dir()

st.markdown(f"**What it did.** {study.did}\n\n**Splits (train · test).** {study.protocol}")
table = cached_study_table(key, folder)
percent = st.column_config.NumberColumn(format="percent")
st.dataframe(table, hide_index=True, key="studies_table",
             column_config={"reported acc": percent, "reported train acc": percent, "ours acc": percent,
                            "ours ± std": percent, "ours val acc": percent, "gap": percent,
                            "ours train–val gap": percent,
                            "reported params": st.column_config.NumberColumn(format="localized"),
                            "ours params": st.column_config.NumberColumn(format="localized")}, placeholder="")
if (table["runs"] == 0).all():
    st.info("No completed runs of this study's suites yet: queue one below.")
if table["adapted"].str.contains("train.epochs=").any():
    st.caption("Runs marked train.epochs=N trained fewer epochs than the study's: their gap says little about "
               "the recipe.")
st.markdown(f"**Readings chosen.** {study.readings}")
learning_curves(study)

if not actor().is_operator:
    st.stop()  # rerunning a study queues runs: operators only
st.subheader("Rerun it")
suite_col, recipe_col = st.columns(2)
with suite_col.form("studies_suite_form"):
    suite = st.selectbox("Suite", list(study.suites), key="studies_suite")
    c1, c2 = st.columns(2)
    epochs = c1.number_input("Epochs per run", 0, 500, 0, key="studies_suite_epochs",
                             help="0: each run trains as long as the study's did, with its early stopping. "
                                  "Fewer epochs are listed as a departure beside the number.")
    repeats = c2.number_input("Seeds per variant", 1, 10, 1, key="studies_suite_repeats")
    if st.form_submit_button("Queue the suite"):
        try:
            run_dirs = actions.launch_suite(actor(), suite, int(epochs), int(repeats), [f"data.path={data_path()}"],
                                            folder, server_settings())
        except (UserError, ValueError) as e:
            st.error(str(e))
        else:
            st.toast(f"Queued {len(run_dirs)} runs of {suite}; follow them on the Train page.")
with recipe_col.form("studies_recipe_form"):
    suite_name, variant = study.best
    st.markdown(f"The best model: **{variant}** of `{suite_name}`, as the study trained it "
                f"({study.recipe_epochs} epochs).")
    recipe_epochs = st.number_input("Epochs", 1, 500, study.recipe_epochs, key=f"studies_recipe_epochs_{key}")
    if st.form_submit_button("Queue the best-model recipe"):
        try:
            from fer.jobs.submit import fitted_to_data  # launching builds the model: PyTorch loads here
            from fer.training.validate import check_config

            cfg = fitted_to_data([study_recipe(key, int(recipe_epochs), [f"data.path={data_path()}"])])[0]
            run_dir = actions.launch(actor(), check_config(cfg), folder, server_settings(), data_path())
        except (UserError, ValueError) as e:
            st.error(str(e))
        else:
            st.toast(f"Queued {run_dir.name}; follow it on the Train page.")
st.caption("Data without PrivateTest (the Kaggle image folders) tests on PublicTest instead, and PublicTest then "
           "leaves the training pool; such runs carry the tag adapted:test_split=PublicTest.")
