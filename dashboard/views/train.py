"""Train: a form in words generated from the run config (names and help from its fields, grouped, presets
to start from, a time estimate measured on this machine); jobs run in the background worker
(the same queue as `fer train --queue` and `fer suite run`) on the machine's slots (GPUs or CPU slots)
or, when chosen, as tasks on a Ray cluster,
with the machine's load, the queue's order and controls (pause, move, retry), live progress, curves,
log tail, cancel, resume, and "edit and relaunch" for runs whose settings were wrong.

The whole config is checked when Launch is pressed (fer.training.validate): an impossible setting is one
message and no run; a costly one (a huge model, an emulated precision) asks for a confirmation.
"""
import json
from pathlib import Path

import altair as alt
import streamlit as st

from access import actor, server_settings
from common import cached_report, data_path, plain, runs_dir
from forms import fill_form, run_form
from fer.config import ConfigError, RunConfig, apply
from fer.core.errors import UserError
from fer.data import DataError
from fer.jobs.machine import cpu_stats, gpu_stats, machine_summary
from fer.jobs import actions
from fer.jobs.queue import LOCAL, describe_job, describe_target, queued_runs, settings
from fer.jobs.suites import SUITES
from fer.jobs.worker import machine_slots, revive_worker
from fer.runs.compare import curves
from fer.runs.store import list_runs, log_tail, read_batch_losses, read_config, read_status, run_progress
from fer.training.estimate import estimate_run, measure_throughput
from fer.training.presets import PRESETS, preset_config
from fer.training.validate import check_config

@st.cache_data(show_spinner="Timing the model on this machine…", max_entries=32, ttl=600)
def measured_throughput(model: str, kwargs: str, size: int, chans: int, batch: int, amp: str, device: str):
    """Training and evaluation images/s of one model setting, timed here (again after 10 minutes)."""
    cfg = RunConfig()
    cfg.model.name, cfg.model.input_size, cfg.model.in_chans = model, size, chans
    cfg.model.kwargs = json.loads(kwargs)
    cfg.train.batch_size, cfg.train.amp, cfg.train.device = batch, amp, device
    return measure_throughput(cfg)


def time_estimate(cfg: RunConfig, source: str) -> str:
    """The run's expected duration on this machine, in words."""
    sizes = cached_report(source).counts["total"].to_dict()
    speed = measured_throughput(cfg.model.name, json.dumps(cfg.model.kwargs, sort_keys=True), cfg.model.input_size,
                                cfg.model.in_chans, cfg.train.batch_size, cfg.train.amp, cfg.train.device)
    return estimate_run(cfg, sizes, speed).describe()


def load_into_form(run_dir: str) -> None:
    """Button callback (edit and relaunch): put a run's settings into the form's widgets."""
    fill_form(read_config(run_dir))
    st.session_state["train_relaunch_of"] = str(run_dir)


def load_preset() -> None:
    """Preset chooser callback: the form takes the preset's settings."""
    name = st.session_state["train_preset"]
    fill_form(preset_config(name) if name != "defaults" else RunConfig())
    st.session_state.pop("train_relaunch_of", None)


st.title("Train")
folder, source = runs_dir(), data_path()
st.caption(f"Machine: {machine_summary()} · runs folder {plain(folder)} · data {plain(source)}")

server = server_settings()
target = LOCAL
if server.ray_targets:  # the clusters the server's settings offer; a visitor never types an address
    target = st.selectbox("Where runs train", [LOCAL, *server.ray_targets], format_func=describe_target,
                          key="train_target")
    if target != LOCAL:
        st.caption(f"Each run becomes a Ray task on {describe_target(target)}, with its GPUs (or CPU cores) "
                   f"reserved. The runs folder `{plain(folder)}` must be on a filesystem every node shares.")

new_run, suite_tab = st.tabs(["New run", "Run a suite"])
with new_run:
    if st.session_state.get("train_relaunch_of"):
        st.info(f"The form holds the settings of {st.session_state['train_relaunch_of'].rsplit('/', 1)[-1]}: "
                "change what was wrong and launch again.")
    st.selectbox("Start from", ["defaults", *PRESETS.in_order()], key="train_preset", on_change=load_preset,
                 format_func=lambda n: "The defaults" if n == "defaults" else PRESETS.info(n)["title"],
                 help="A preset fills the form; change anything before launching.")
    with st.form("train_form"):
        values = run_form()
        confirmed = st.checkbox("Launch even if the settings are costly (a very large model, an emulated precision)",
                                key="train_confirm")
        c1, c2 = st.columns([1, 4])
        launched = c1.form_submit_button("Launch training", type="primary")
        estimated = c2.form_submit_button("Estimate the time")
    if estimated:
        try:
            cfg = apply(RunConfig(), {**values, "data.path": source})
            check_config(cfg)
            st.info(f"This run would take {time_estimate(cfg, source)}.")
        except (ConfigError, DataError, UserError) as e:
            st.error(f"Cannot estimate: {e}")
    if launched:
        try:
            cfg = apply(RunConfig(), {**values, "data.path": source})
            checked = check_config(cfg)  # the one check of this launch: submit takes the checked config
            if checked.warnings and not confirmed:
                for warning in checked.warnings:
                    st.warning(plain(warning))
                st.info("Not launched yet: tick the confirmation above the button to launch it anyway.")
            else:
                run_dir = actions.launch(actor(), checked, folder, server, source, target)
                st.session_state.pop("train_relaunch_of", None)
                st.toast(f"Queued {run_dir.name}: a background worker trains it, even if you close the page.")
        except (ConfigError, DataError, UserError) as e:
            st.error(f"Not launched: {e}")  # shown only to who typed it

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
        overrides = [f"data.path={source}"] + [line.strip() for line in extra.splitlines() if line.strip()]
        try:
            run_dirs = actions.launch_suite(actor(), suite, int(epochs), int(repeats), overrides, folder, server, target)
        except (ConfigError, DataError, UserError) as e:
            st.error(f"Not queued: {e}")
        else:
            st.toast(f"Queued {len(run_dirs)} runs of the {suite} suite.")


def machine() -> None:
    """The machine: GPUs or CPU slots, what runs where, and the queue's settings."""
    st.subheader("Machine")
    cpu, gpus = cpu_stats(), gpu_stats()
    st.caption(f"CPU: {cpu.cores} cores, {cpu.utilisation_pct:.0f}% busy · memory {cpu.memory_used_gib:.1f} of "
               f"{cpu.memory_total_gib:.1f} GiB")
    for gpu in gpus:
        st.caption(f"GPU {gpu.index}: {gpu.name} · {gpu.memory_used_mib / 1024:.1f} of "
                   f"{gpu.memory_total_mib / 1024:.1f} GiB · {gpu.utilisation_pct:.0f}% busy")
    options = settings(folder)
    c1, c2, c3 = st.columns(3)
    if not gpus:  # on a GPU machine there is one slot per GPU
        c1.number_input("CPU slots (jobs at once)", 1, cpu.cores, int(options.get("slots") or 1), key="train_slots",
                        on_change=lambda: actions.steer_queue(actor(), Path(folder), "slots",
                                                              value=int(st.session_state["train_slots"])),
                        help="Each job's processes get an equal share of the cores.")
    c2.toggle("Pause the queue", value=bool(options.get("paused")), key="train_paused",
              on_change=lambda: actions.steer_queue(actor(), Path(folder),
                                                    "pause" if st.session_state["train_paused"] else "go"),
              help="Running jobs go on; no new one starts.")
    c3.toggle("Resume interrupted runs automatically", value=bool(options.get("auto_resume")), key="train_auto",
              on_change=lambda: actions.steer_queue(actor(), Path(folder), "auto_resume",
                                                    value=st.session_state["train_auto"]))


# Runs trained by the process that created them, not by the queue's worker: where that process is.
OUTSIDE_QUEUE = {"terminal": "in a terminal (fer train)", "python": "from Python (fer.training.fit.train)"}


def show_progress(run_dir) -> None:
    """A running job's epoch and batch bars, its phase, speed and time left."""
    progress = run_progress(run_dir)
    st.progress(progress.epoch_fraction, text=f"epoch {progress.epoch}/{progress.epochs}")
    if progress.phase == "evaluating":
        st.info("Evaluating the best checkpoint on the validation and test splits…")
    else:
        st.progress(progress.batch_fraction, text=f"batch {progress.batch}/{progress.batches}"
                    + (" · validating" if progress.phase == "validating" else ""))
    if progress.eta_s is not None:
        st.caption(f"{progress.images_per_s or 0:.0f} images/s · ETA {progress.eta_s / 60:.1f} min")


def job_card(row, status: dict, paused: bool, queue: list) -> None:
    """One run: where it stands, its curves and log, and what can be done with it."""
    run_dir, run_id, state = row["path"], row["run_id"], status.get("state")
    with st.container(border=True):
        st.text(f"{row['label']} · {describe_job(status, paused)} · {row['model']} · {run_id}")  # names are text
        outside = OUTSIDE_QUEUE.get(status.get("launched_from"))  # `fer train` in a shell, or Python's train()
        if outside and state in ("running", "queued"):
            st.caption(f"Started {outside}, not from the dashboard (process {status.get('pid', '?')} on "
                       f"{plain(status.get('host', '?'))}): Stop ends that command at its next batch.")
        if state == "running":
            show_progress(run_dir)
        if status.get("error"):
            st.error(plain(status["error"]))
        if status.get("pruned"):
            st.caption(plain(status["pruned"]))
        for warning in status.get("warnings") or ():
            st.warning(plain(warning))
        losses = read_batch_losses(run_dir)
        if not losses.empty:
            st.altair_chart(alt.Chart(losses).mark_line().encode(
                x=alt.X("progress:Q", title="epoch"), y=alt.Y("loss:Q", title="training loss (smoothed)")),
                key=f"train_loss_{run_id}")
        long = curves([run_dir])
        if not long.empty:
            st.altair_chart(alt.Chart(long[long["metric"].isin(["train_loss", "val_loss", "train_acc", "val_acc"])])
                            .mark_line(point=True).encode(x="epoch:Q", y="value:Q", color="metric:N"),
                            key=f"train_curve_{run_id}")
        tail = log_tail(run_dir)
        if tail:
            st.code(tail, language=None)
        buttons = st.columns(5)
        stop = "Stop" if outside else "Cancel"
        if state in ("running", "queued") and buttons[0].button(stop, key=f"cancel_{run_id}"):
            actions.cancel(actor(), Path(run_dir))
            if outside:
                st.info(f"Asked the run to stop: the command that started it {outside} ends at its next batch "
                        "and reports the run as cancelled.")
        if state == "queued" and Path(run_dir) in queue:
            position = queue.index(Path(run_dir))
            if buttons[1].button("Move up", key=f"up_{run_id}", disabled=position == 0):
                actions.steer_queue(actor(), Path(folder), "up", Path(run_dir))
            if buttons[2].button("Move down", key=f"down_{run_id}", disabled=position == len(queue) - 1):
                actions.steer_queue(actor(), Path(folder), "down", Path(run_dir))
        # A run that failed before finishing an epoch has nothing to resume from: fix its settings instead.
        resumable = state in ("cancelled", "interrupted", "pruned") or \
            state == "failed" and (Path(run_dir) / "last.pt").is_file()
        # Without last.pt (stopped before its first epoch ended) the run starts again from epoch 1: say so.
        label = "Retry" if state == "failed" else "Resume" if (Path(run_dir) / "last.pt").is_file() else "Start again"
        if resumable and buttons[3].button(label, key=f"resume_{run_id}"):
            actions.resume(actor(), Path(run_dir))
        if state in ("failed", "cancelled", "interrupted") and \
                buttons[4].button("Edit and relaunch", key=f"relaunch_{run_id}", on_click=load_into_form,
                                  args=(run_dir,)):
            st.rerun()  # the whole page, so the form above shows the run's settings


@st.fragment(run_every=2)
def jobs() -> None:
    """Live view of the machine, running and queued jobs in order, and recent runs (refreshes every 2 s)."""
    machine()
    board = list_runs(folder)
    # Queued runs never wait on a killed worker (the board just read every status: no second listing).
    pid = revive_worker(folder, has_queued=bool(not board.empty and (board["status"] == "queued").any()))
    paused = bool(settings(folder).get("paused"))
    st.subheader("Jobs")
    st.caption(f"Worker: {'running (pid ' + str(pid) + ')' if pid else 'idle'} · slots: "
               f"{', '.join(machine_slots(folder))}")
    if board.empty:
        st.info("No runs yet.")
        return
    queue = queued_runs(folder)
    rows = {Path(p): row for p, row in zip(board["path"], board.to_dict("records"))}
    running = sorted(p for p, row in rows.items() if row["status"] == "running")
    recent = [Path(p) for p in board[~board["status"].isin(["running", "queued"])]
              .sort_values("run_id", ascending=False).head(5)["path"]]
    for run_dir in running + [q for q in queue if q in rows] + recent:
        job_card(rows[run_dir], read_status(run_dir), paused, queue)


jobs()
