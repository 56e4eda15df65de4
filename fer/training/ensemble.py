"""An ensemble of trained runs as one run: `fer ensemble RUN RUN … --name NAME`.

`ensemble_config` describes it before anything is written: the members' architectures and their
temperatures (fitted on validation, without TTA) go into `model.kwargs` of an `ensemble` model
(fer.models.ensemble), and the members must share their classes, their preprocessing and their
validation faces, so the ensemble is calibrated and scored on faces no member trained on. Train it
like any run (`fit.train` hands it to `fit_ensemble_run`): the members' weights are copied into one
checkpoint, one temperature per TTA mode is fitted for the ensemble as used, and val and test are
scored as at the end of any training. Pages, commands, `fer export --int8` and `fer release` then
treat it as an ordinary checkpoint run.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from fer.config import ConfigError, RunConfig
from fer.core.files import utc_now
from fer.data import RunData, splits_for
from fer.data.ferplus import load_run_data
from fer.inference.averaging import temperature_for
from fer.inference.predictor import Predictor
from fer.models import create_model
from fer.models.ensemble import MAX_MEMBERS
from fer.runs.checkpoint import (checkpoint_payload, float_state_dict, load_checkpoint,
                                 preprocessing_from_checkpoint)
from fer.runs.store import SHIPPED_RUN_DIR, read_config, resolve_run
from fer.training.evaluate import Evaluation, fit_calibration, score
from fer.training.recorder import Recorder

KIND = "ensemble"
# The fields that decide which faces are validation and test: members must agree on all of them.
SPLIT_FIELDS = ("val_source", "val_fraction", "test_split", "train_splits", "val_stratify", "limit", "labels")


def split_definition(cfg: RunConfig) -> Tuple[Any, ...]:
    """What decides a run's validation and test faces (with the split seed it really used)."""
    seed = cfg.train.seed if cfg.data.split_seed < 0 else cfg.data.split_seed
    return (seed,) + tuple(str(getattr(cfg.data, f)) for f in SPLIT_FIELDS)


def _runs_dir(cfg: RunConfig) -> Optional[Path]:
    return Path(cfg.runs_dir) if cfg.runs_dir else None


def _members(names: Sequence[str], runs_dir: Optional[Path]) -> List[Tuple[str, Path, Dict[str, Any]]]:
    """(name, folder, checkpoint) per member; ConfigError when one is missing or not a trained image model."""
    if not 2 <= len(names) <= MAX_MEMBERS:
        raise ConfigError(f"an ensemble needs 2 to {MAX_MEMBERS} runs, got {len(names)}")
    members = []
    for name in names:
        try:
            folder = resolve_run(name, runs_dir)
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"ensemble member {name!r}: {e}") from None
        if not (folder / "best.pt").is_file():
            raise ConfigError(f"ensemble member {name!r} holds no trained image model (best.pt)")
        ckpt = load_checkpoint(folder / "best.pt")
        if ckpt["model"]["name"] == KIND:
            raise ConfigError(f"ensemble member {name!r} is an ensemble itself: name its members instead")
        members.append((name, folder, ckpt))
    return members


def ensemble_config(names: Sequence[str], name: str = "ensemble", runs_dir: Optional[Path] = None,
                    data_path: str = "") -> RunConfig:
    """The run config of an ensemble of `names` (run ids, folders, "default"), checked against its members."""
    members = _members(names, runs_dir)
    first_name, first_folder, first = members[0]
    cfg = copy.deepcopy(read_config(first_folder))
    _check_same_validation(cfg, [read_config(folder) for _, folder, _ in members[1:]], data_path)
    for member, _, ckpt in members[1:]:
        if ckpt["class_names"] != first["class_names"] or ckpt["preprocessing"] != first["preprocessing"]:
            raise ConfigError(f"{member!r} and {first_name!r} differ in their classes or preprocessing")
    cfg.data.split_seed = split_definition(cfg)[0]
    cfg.name, cfg.tags, cfg.runs_dir = name, ["ensemble"], str(runs_dir or "")
    cfg.data.path = data_path or cfg.data.path
    cfg.model.name, cfg.train.epochs, cfg.distill.teacher = KIND, 1, []
    cfg.model.kwargs = {
        "members": [{"name": c["model"]["name"], "kwargs": _plain_kwargs(c["model"]["kwargs"])} for _, _, c in members],
        "temperatures": [round(temperature_for(c.get("calibration"), "none"), 6) for _, _, c in members],
        "runs": ["default" if folder == SHIPPED_RUN_DIR else folder.name for _, folder, _ in members]}
    return cfg


def _check_same_validation(first: RunConfig, others: Sequence[RunConfig], data_path: str) -> None:
    """ConfigError unless every member's validation faces are the first member's (on the data at hand)."""
    if all(split_definition(o) == split_definition(first) for o in others):
        return  # the same settings pick the same faces
    data = load_run_data(first, data_path or None)
    wanted = splits_for(first, data).val
    if not all(np.array_equal(splits_for(o, data).val, wanted) for o in others):
        raise ConfigError("the members were validated on different faces (their split seeds or data settings "
                          "differ): train them with one data.split_seed, so the ensemble is chosen and "
                          "calibrated on faces none of them trained on")


def _plain_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    # The checkpoint holds the weights: never fetch ImageNet weights again for a member.
    return {k: v for k, v in kwargs.items() if k not in ("pretrained", "weights_path")}


def assembled_model(cfg: RunConfig) -> Tuple[Any, Dict[str, Any]]:
    """The ensemble module with its members' trained weights, and the first member's checkpoint."""
    kwargs = cfg.model.kwargs
    check_ensemble(cfg)
    members = _members(kwargs["runs"], _runs_dir(cfg))
    model = create_model(KIND, num_classes=len(members[0][2]["class_names"]),
                         in_chans=members[0][2]["model"]["in_chans"], **kwargs)
    for net, (_, _, ckpt) in zip(model.members, members):
        net.load_state_dict(float_state_dict(ckpt))
    return model.eval(), members[0][2]


def fit_ensemble_run(cfg: RunConfig, recorder: Recorder) -> None:
    """Assemble the members into best.pt, fit the ensemble's temperatures on validation, score val and test."""
    started = time.perf_counter()
    recorder.started(1, 1, "CPU (assembling trained members)")
    model, first = assembled_model(cfg)
    run_data = RunData.from_config(cfg)
    data, splits = run_data.data, run_data.splits
    payload = checkpoint_payload(model, cfg.to_dict(), first["class_names"], preprocessing_from_checkpoint(first),
                                 epoch=1, metrics={})
    predictor = Predictor(model, first["class_names"], preprocessing_from_checkpoint(first), name=recorder.run_dir.name,
                          batch_size=cfg.train.eval_batch_size, provenance={"checkpoint": "best", "epoch": 1})
    recorder.evaluating()
    calibration, val = fit_calibration(predictor, data, splits.val)
    recorder.epoch_done({"epoch": 1, "train_loss": None, "train_acc": None, "val_loss": _nll(val),
                         "val_acc": val.metrics["accuracy"], "lr": None, "best": True, "time": utc_now(),
                         "seconds": round(time.perf_counter() - started, 3)}, 1, val.metrics["accuracy"])
    scored = [("val", val)]
    if len(splits.test):
        scored.append(("test", score(predictor, data, splits.test, cfg.data.test_split)))
    results = {}
    for role, result in scored:
        recorder.evaluation(role, result.metrics, result.predictions)
        results[role] = {"split": result.metrics["split"], "accuracy": result.metrics["accuracy"],
                         "macro_f1": result.metrics["macro_f1"], "ece": result.metrics["ece"]}
    recorder.checkpoint("best.pt", {**payload, "metrics": results, "calibration": calibration})
    recorder.log.info("ensemble of %s: temperatures per TTA mode %s", ", ".join(cfg.model.kwargs["runs"]),
                      calibration["temperatures"])
    recorder.completed(best_val_acc=val.metrics["accuracy"], test_acc=results.get("test", {}).get("accuracy"))


def _nll(evaluation: Evaluation) -> float:
    """Mean negative log-likelihood of the true classes in a scored split's predictions."""
    frame = evaluation.predictions
    picked = frame.apply(lambda row: row[f"p_{row['true']}"], axis=1).to_numpy(dtype=float)
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def check_ensemble(cfg: RunConfig) -> None:
    """ConfigError unless an assembled ensemble's members are there, as its config describes them."""
    if cfg.model.name != KIND or not cfg.model.kwargs.get("runs"):
        return  # not an ensemble of trained runs (an `ensemble` model can also train from scratch)
    kwargs = cfg.model.kwargs
    members = _members(kwargs["runs"], _runs_dir(cfg))
    specs = kwargs.get("members") or []
    if len(specs) != len(members) or any(
            c["model"]["name"] != s.get("name") or _plain_kwargs(c["model"]["kwargs"]) != s.get("kwargs", {})
            for (_, _, c), s in zip(members, specs)):
        raise ConfigError("the ensemble's members changed since it was set up: set it up again (fer ensemble)")
    if cfg.data.val_source != "train_fraction" and cfg.data.val_source == cfg.data.test_split:
        raise ConfigError("an ensemble is calibrated on validation: its validation cannot be its test split")
