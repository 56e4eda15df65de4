"""Train: a form generated from the run config and the registries; jobs run in a background worker
process (queued, one at a time), with live progress, curves, log tail, cancel and resume."""
import json
from pathlib import Path

import altair as alt
import streamlit as st
import yaml

from fer.augment import AUGMENTATIONS
from fer.compare import curves
from fer.config import ConfigError, field_specs, load_config
from fer.data import DataError
from fer.device import device_summary
from fer.jobs import cancel, resume, submit, submit_suite, worker_pid
from fer.models import MODELS
from fer.optim import OPTIMIZERS, SCHEDULERS
from fer.runs import default_runs_dir, list_runs, read_metrics, read_status
from fer.suites import SUITES

CHOICES = {"model.name": MODELS.names(), "optim.name": OPTIMIZERS.names(), "sched.name": SCHEDULERS.names(),
           "augmentation": AUGMENTATIONS.names(), "data.sampler": ["none", "weighted"],
           "data.val_source": ["train_fraction", "PublicTest", "PrivateTest"],
           "data.test_split": ["PublicTest", "PrivateTest"], "train.amp": ["auto", "bf16", "fp16", "off"],
           "train.device": ["auto", "cpu", "cuda"]}
MAIN = ["name", "model.name", "optim.name", "sched.name", "augmentation", "train.epochs", "train.batch_size",
        "optim.lr", "train.amp", "train.device", "data.sampler", "loss.class_weights", "loss.label_smoothing"]
SKIP = {"runs_dir", "data.path"}


def widget(key: str, kind, default):
    """One input for a config field, chosen by its type (registries give the choices)."""
    wkey = f"train_field_{key}"
    if key in CHOICES:
        options = CHOICES[key]
        return st.selectbox(key, options, index=options.index(default) if default in options else 0, key=wkey)
    if kind is bool:
        return st.checkbox(key, value=default, key=wkey)
    if kind is int:
        return int(st.number_input(key, value=int(default), step=1, key=wkey))
    if kind is float:
        return float(st.number_input(key, value=float(default), format="%g", key=wkey))
    if kind is str:
        return st.text_input(key, value=default, key=wkey)
    return st.text_input(f"{key} (YAML)", value=json.dumps(default), key=wkey)


st.title("Train")
runs_dir = st.session_state.get("runs_dir") or str(default_runs_dir())
data_path = st.session_state.get("data_path", "data")
st.caption(f"Device: {device_summary()} · runs folder `{runs_dir}` · data `{data_path}`")

new_run, suite_tab = st.tabs(["New run", "Run a suite"])
with new_run:
    with st.form("train_form"):
        specs = {k: (t, d) for k, t, d in field_specs() if k not in SKIP}
        values = {}
        cols = st.columns(3)
        for i, key in enumerate(MAIN):
            with cols[i % 3]:
                values[key] = widget(key, *specs[key])
        with st.expander("All settings"):
            cols = st.columns(3)
            for i, key in enumerate(k for k in specs if k not in MAIN):
                with cols[i % 3]:
                    values[key] = widget(key, *specs[key])
        launched = st.form_submit_button("Launch training", type="primary")
    if launched:
        overrides = [f"data.path={data_path}"]
        for key, value in values.items():
            kind, default = specs[key]
            if kind not in (bool, int, float, str) and key not in CHOICES:
                value = yaml.safe_load(value) if str(value).strip() else default
            if value != default:
                overrides.append(f"{key}={json.dumps(value) if not isinstance(value, str) else value}")
        try:
            cfg = load_config(None, overrides)
            run_dir = submit(cfg, runs_dir)
        except (ConfigError, DataError, KeyError, ValueError) as e:
            st.error(f"Not launched: {e}")
        else:
            st.success(f"Queued {run_dir.name}; a background worker trains it (it keeps going if you close the page).")

with suite_tab:
    with st.form("suite_form"):
        suite = st.selectbox("Suite", SUITES.names(), key="train_suite",
                             format_func=lambda n: f"{n}: {SUITES.info(n)['title']}")
        c1, c2 = st.columns(2)
        epochs = c1.number_input("Epochs per run", 1, 500, 5, key="train_suite_epochs")
        repeats = c2.number_input("Seeds per variant", 1, 10, 1, key="train_suite_repeats")
        extra = st.text_area("Extra settings for every run (key=value per line)", key="train_suite_extra")
        queued = st.form_submit_button("Queue the suite")
    if queued:
        overrides = [f"data.path={data_path}"] + [line.strip() for line in extra.splitlines() if line.strip()]
        try:
            run_dirs = submit_suite(suite, int(epochs), int(repeats), overrides, runs_dir)
        except (ConfigError, DataError, KeyError, ValueError) as e:
            st.error(f"Not queued: {e}")
        else:
            st.success(f"Queued {len(run_dirs)} runs of the {suite} suite.")


@st.fragment(run_every=2)
def jobs() -> None:
    """Live view of queued, running and recent runs (refreshes every 2 s)."""
    board = list_runs(runs_dir)
    pid = worker_pid(runs_dir)
    st.subheader("Jobs")
    st.caption(f"Worker: {'running (pid ' + str(pid) + ')' if pid else 'idle'}")
    if board.empty:
        st.info("No runs yet.")
        return
    active = board[board["status"].isin(["running", "queued"])]
    recent = board[~board["status"].isin(["running", "queued"])].sort_values("run_id", ascending=False).head(5)
    for _, row in list(active.sort_values("run_id").iterrows()) + list(recent.iterrows()):
        run_dir = row["path"]
        status = read_status(run_dir)
        with st.container(border=True):
            st.markdown(f"**{row['run_id']}** · {status.get('state')} · {row['model']}")
            if status.get("state") == "running":
                epochs, epoch = status.get("epochs") or 1, status.get("epoch") or 1
                batches, batch = status.get("batches") or 1, status.get("batch") or 0
                st.progress(min(1.0, (epoch - 1) / epochs), text=f"epoch {epoch}/{epochs}")
                st.progress(min(1.0, batch / batches), text=f"batch {batch}/{batches}")
                metrics = read_metrics(run_dir)
                if not metrics.empty:
                    per_epoch = metrics["seconds"].mean()
                    left = per_epoch * (epochs - epoch + 1 - batch / batches)
                    st.caption(f"{metrics['images_per_s'].iloc[-1]:.0f} images/s · ETA {left / 60:.1f} min")
            if status.get("error"):
                st.error(status["error"])
            long = curves([run_dir])
            if not long.empty:
                st.altair_chart(alt.Chart(long[long["metric"].isin(["train_loss", "val_loss", "train_acc", "val_acc"])])
                                .mark_line(point=True).encode(x="epoch:Q", y="value:Q", color="metric:N"),
                                key=f"train_curve_{row['run_id']}")
            log = Path(run_dir) / "train.log"
            if log.is_file():
                st.code("\n".join(log.read_text().splitlines()[-8:]) or "(empty)", language=None)
            c1, c2 = st.columns(2)
            if status.get("state") in ("running", "queued") and c1.button("Cancel", key=f"cancel_{row['run_id']}"):
                cancel(run_dir)
            if status.get("state") in ("cancelled", "interrupted", "failed") and \
                    c2.button("Resume", key=f"resume_{row['run_id']}"):
                resume(run_dir)


jobs()
