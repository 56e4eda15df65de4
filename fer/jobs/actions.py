"""What a signed-in visitor may do to runs and the queue, checked and recorded.

Every action a dashboard page offers goes through here: it checks the actor's role (viewers look,
operators launch, cancel, resume, edit, delete and steer the queue), refuses places and network
targets the server's settings do not offer, and appends who did what to the runs folder's audit log.
The pages hide the buttons a role may not use; these checks hold even when a page is reached anyway.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence

from fer.config import RunConfig
from fer.core.auth import Actor
from fer.core.errors import UserError
from fer.core.settings import PathNotAllowed, ServerSettings, within
from fer.jobs import queue
from fer.jobs.queue import LOCAL
from fer.jobs.worker import ensure_worker, resume as resume_run
from fer.runs import trash, writer

if TYPE_CHECKING:  # launching loads PyTorch (the checks build the model); reading and steering do not
    from fer.training.validate import CheckedConfig


class NotAllowed(UserError):
    """The actor's role does not allow this action."""


def require_operator(actor: Actor, what: str) -> None:
    """NotAllowed unless the actor is an operator."""
    if not actor.is_operator:
        raise NotAllowed(f"{what} needs the operator role; {actor.identity} is a {actor.role}")


def _audit(actor: Actor, root: Path, action: str, target: str, **detail: Any) -> None:
    writer.append_audit(root, actor.identity, actor.role, action, target, **detail)


def check_places(cfg: RunConfig, settings: ServerSettings, data_source: str, runs_dir: str, target: str) -> None:
    """PathNotAllowed when a config names a place or a network target the server does not offer."""
    if str(cfg.data.path) not in ("", data_source):
        raise PathNotAllowed("data.path is chosen in the sidebar, among the server's data sources")
    if cfg.runs_dir not in ("", runs_dir):
        raise PathNotAllowed("runs_dir is chosen in the sidebar, among the server's runs folders")
    if target != LOCAL and target not in settings.ray_targets:
        raise PathNotAllowed("this Ray cluster is not one the server offers")
    if cfg.tracking.mlflow_uri and cfg.tracking.mlflow_uri not in settings.mlflow_uris:
        raise PathNotAllowed("tracking.mlflow_uri is not one of the MLflow servers this server offers")
    weights = cfg.model.kwargs.get("weights_path")
    if weights:
        within(str(weights), settings.weights_dirs, "weights file")
    if cfg.data.ferplus_path:
        within(cfg.data.ferplus_path, [Path(data_source).expanduser().resolve().parent, data_source], "FER+ file")


def launch(actor: Actor, checked: CheckedConfig, runs_dir: str, settings: ServerSettings, data_source: str,
           target: str = LOCAL) -> Path:
    """Queue a checked run for the actor (operators only), in the chosen runs folder, and record it."""
    require_operator(actor, "launching a run")
    check_places(checked.config, settings, str(Path(data_source).expanduser().resolve()), runs_dir, target)
    from fer.jobs.submit import submit

    run_dir = submit(checked, Path(runs_dir), target)
    _audit(actor, Path(runs_dir), "launch", run_dir.name, name=checked.config.name, where=target)
    return run_dir


def launch_suite(actor: Actor, name: str, epochs: int, repeats: int, overrides: Sequence[str], runs_dir: str,
                 settings: ServerSettings, target: str = LOCAL) -> List[Path]:
    """Queue every run of a suite for the actor (operators only), and record it."""
    require_operator(actor, "queuing a suite")
    if target != LOCAL and target not in settings.ray_targets:
        raise PathNotAllowed("this Ray cluster is not one the server offers")
    from fer.jobs.submit import submit_suite

    run_dirs = submit_suite(name, epochs, repeats, overrides, Path(runs_dir), target=target)
    _audit(actor, Path(runs_dir), "launch_suite", name, runs=[r.name for r in run_dirs], where=target)
    return run_dirs


def cancel(actor: Actor, run_dir: Path) -> str:
    """Cancel a queued or running run for the actor (operators only)."""
    require_operator(actor, "cancelling a run")
    result = queue.cancel(writer.own_run(run_dir))
    _audit(actor, Path(run_dir).parent, "cancel", Path(run_dir).name)
    return result


def resume(actor: Actor, run_dir: Path, target: Optional[str] = None) -> None:
    """Queue a stopped run again for the actor (operators only)."""
    require_operator(actor, "resuming a run")
    resume_run(writer.own_run(run_dir), target)
    _audit(actor, Path(run_dir).parent, "resume", Path(run_dir).name)


def edit(actor: Actor, run_dir: Path, name: str, tags: Sequence[str]) -> None:
    """Rename and retag a run for the actor (operators only)."""
    require_operator(actor, "editing a run")
    writer.rename_run(run_dir, name)
    writer.set_tags(run_dir, tags)
    _audit(actor, Path(run_dir).parent, "edit", Path(run_dir).name, name=name, tags=list(tags))


def delete(actor: Actor, run_dir: Path, keep_days: Optional[float] = None) -> Path:
    """Move a run to the trash for the actor (operators only); restorable for `keep_days`.

    Each delete also empties what has been in the trash longer than `keep_days` (None keeps it all).
    """
    require_operator(actor, "deleting a run")
    root = Path(run_dir).parent
    trashed = trash.delete_run(run_dir)
    _audit(actor, root, "delete", Path(run_dir).name)
    if keep_days is not None and (gone := trash.empty_trash(root, keep_days)):
        _audit(actor, root, "empty_trash", f"{gone} run(s)", older_than_days=keep_days)
    return trashed


def restore(actor: Actor, runs_dir: Path, run_id: str) -> Path:
    """Bring a run back from the trash for the actor (operators only)."""
    require_operator(actor, "restoring a run")
    restored = trash.restore_run(runs_dir, run_id)
    _audit(actor, Path(runs_dir), "restore", restored.name)
    return restored


QUEUE_ACTIONS = {"pause": lambda root, run, value: queue.set_paused(root, True),
                 "go": lambda root, run, value: queue.set_paused(root, False),
                 "auto_resume": lambda root, run, value: queue.set_auto_resume(root, bool(value)),
                 "slots": lambda root, run, value: queue.set_worker_slots(root, int(value)),
                 "up": lambda root, run, value: queue.move(run, "up"),
                 "down": lambda root, run, value: queue.move(run, "down"),
                 "top": lambda root, run, value: queue.move(run, "top")}


def steer_queue(actor: Actor, runs_dir: Path, action: str, run_dir: Optional[Path] = None, value: Any = None) -> None:
    """Pause, release, reorder or resize the queue for the actor (operators only), and record it."""
    require_operator(actor, "steering the queue")
    step: Callable[..., None] = QUEUE_ACTIONS[action]
    step(Path(runs_dir), writer.own_run(run_dir) if run_dir is not None else None, value)
    if action == "go":
        ensure_worker(Path(runs_dir))
    _audit(actor, Path(runs_dir), f"queue_{action}", Path(run_dir).name if run_dir else "", value=value)
