"""Experiment suites: the FER2013 studies' ablation ladders as named lists of run variants.

A suite is a registered function `(epochs) -> [Variant]`. Each variant is a nested config layer
applied over the defaults (and an optional config file); user `--set` overrides come last. Every
run is tagged `suite:NAME`, `variant:V` and `seed:S`, so `suite_report` can average repeats. Suites
run through the job queue like every other run (`fer.jobs.run_suite`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import pandas as pd

from fer.config import RunConfig, load_config
from fer.registry import Registry
from fer.runs import list_runs


@dataclass
class Variant:
    name: str
    layer: Dict[str, Any] = field(default_factory=dict)  # nested config overrides


SUITES: Registry[Callable[[int], List[Variant]]] = Registry("suite")


def _cnn(**kwargs: Any) -> Dict[str, Any]:
    return {"model": {"name": "plain_cnn", "kwargs": kwargs}}


def _merge(*layers: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@SUITES.register("depth", title="Plain CNN with 1, 3, 5 and 7 conv blocks (BN + dropout)")
def depth_suite(epochs: int) -> List[Variant]:
    """Depth ladder: blocks of two 3×3 convs; after four poolings deeper blocks keep the 3×3 map."""
    return [Variant(f"depth{d}", _cnn(depth=d)) for d in (1, 3, 5, 7)]


@SUITES.register("regularization", title="None / BatchNorm / dropout / BN + dropout / BN + dropout + augmentation")
def regularization_suite(epochs: int) -> List[Variant]:
    """Regularisation ladder on the 4-block plain CNN."""
    off = {"augmentation": "none"}
    return [
        Variant("none", {**off, **_cnn(batchnorm=False, dropout=0.0, fc_dropout=0.0)}),
        Variant("batchnorm", {**off, **_cnn(batchnorm=True, dropout=0.0, fc_dropout=0.0)}),
        Variant("dropout", {**off, **_cnn(batchnorm=False, dropout=0.1, fc_dropout=0.5)}),
        Variant("bn+dropout", {**off, **_cnn(batchnorm=True, dropout=0.1, fc_dropout=0.5)}),
        Variant("bn+dropout+aug", {"augmentation": "standard", **_cnn(batchnorm=True, dropout=0.1, fc_dropout=0.5)}),
    ]


@SUITES.register("architecture", title="BN baseline / +SE attention / +skip / combo / CBAM / Deep-Emotion")
def architecture_suite(epochs: int) -> List[Variant]:
    """Architecture ladder: attention and skip connections on the BN baseline, then CBAM and Deep-Emotion."""
    return [
        Variant("bn-baseline", _cnn()),
        Variant("attention", _cnn(attention="se")),
        Variant("skip", _cnn(residual=True)),
        Variant("skip+attention", _cnn(residual=True, attention="se")),
        Variant("cbam", {"model": {"name": "cbam_cnn", "kwargs": {}}}),
        Variant("deep-emotion", {"model": {"name": "deep_emotion", "kwargs": {}}}),
    ]


@SUITES.register("optimizer", title="AdamW / SGD + momentum / KacıFANN / Momentum-Kacı, each with OneCycle")
def optimizer_suite(epochs: int) -> List[Variant]:
    """Optimizer ladder; each peak learning rate suits that optimizer's step size (see README)."""
    one = {"sched": {"name": "onecycle", "max_lr": 0.0}}
    return [
        Variant("adamw", {**one, "optim": {"name": "adamw", "lr": 2e-3}}),
        Variant("sgd-momentum", {**one, "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}}),
        Variant("kacifann", {**one, "optim": {"name": "kacifann", "lr": 0.1}}),
        Variant("momentum-kaci", {**one, "optim": {"name": "momentum_kaci", "lr": 0.02, "momentum": 0.9}}),
    ]


@SUITES.register("scheduler", title="Step / multi-step / cosine / plateau / OneCycle (SGD + momentum)")
def scheduler_suite(epochs: int) -> List[Variant]:
    """Scheduler ladder with SGD + Nesterov; step points scale with the number of epochs."""
    sgd = {"optim": {"name": "sgd", "lr": 0.02, "momentum": 0.9, "nesterov": True}}
    third = max(1, epochs // 3)
    return [
        Variant("step", _merge(sgd, {"sched": {"name": "step", "step_size": third, "gamma": 0.1}})),
        Variant("multistep", _merge(sgd, {"sched": {"name": "multistep", "gamma": 0.1,
                                                    "milestones": [max(1, epochs // 2), max(2, 3 * epochs // 4)]}})),
        Variant("cosine", _merge(sgd, {"sched": {"name": "cosine"}})),
        Variant("plateau", _merge(sgd, {"sched": {"name": "plateau", "patience": max(1, epochs // 10),
                                                  "factor": 0.5}})),
        Variant("onecycle", _merge(sgd, {"sched": {"name": "onecycle", "max_lr": 0.05}})),
    ]


@SUITES.register("transfer", title="ImageNet ResNet-18/34: frozen backbone → layer4 unfrozen vs full fine-tune")
def transfer_suite(epochs: int) -> List[Variant]:
    """Transfer ladder: head-only warm-up then layer4 (10× lower backbone lr) vs full fine-tuning."""
    freeze = max(1, epochs // 5)
    out = []
    for arch in ("resnet18", "resnet34"):
        model = {"model": {"name": arch, "kwargs": {"pretrained": True, "channels": "sum", "stem": "small"}}}
        out.append(Variant(f"{arch}-frozen-then-layer4", _merge(model, {
            "optim": {"name": "adamw", "lr": 1e-3, "backbone_lr": 1e-4},
            "transfer": {"freeze_epochs": freeze, "unfreeze": ["layer4"]}})))
        out.append(Variant(f"{arch}-full-finetune", _merge(model, {
            "optim": {"name": "adamw", "lr": 1e-3, "backbone_lr": 0.0}, "transfer": {"freeze_epochs": 0}})))
    return out


def suite_configs(name: str, repeats: int = 1, epochs: int = 0, overrides: Sequence[str] = (),
                  config_path: Optional[str | Path] = None) -> List[RunConfig]:
    """One RunConfig per variant × repeat: defaults → config file → variant → `overrides` → `epochs`."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    base = load_config(config_path, overrides)
    epochs = epochs or base.train.epochs
    configs = []
    for variant in SUITES.get(name)(epochs):
        for r in range(repeats):
            seed = base.train.seed + r
            cfg = load_config(config_path, overrides, layers=[variant.layer, {"train": {"epochs": epochs, "seed": seed}}])
            cfg.name = f"{name}-{variant.name}-s{seed}"
            cfg.tags = [*base.tags, f"suite:{name}", f"variant:{variant.name}", f"seed:{seed}"]
            configs.append(cfg)
    return configs


def _tag(tags: str, key: str) -> Optional[str]:
    for tag in str(tags or "").split(","):
        if tag.startswith(key + ":"):
            return tag[len(key) + 1:]
    return None


def suite_runs(name: str, runs_dir: Optional[Path] = None) -> pd.DataFrame:
    """Leaderboard rows of the suite's runs, with `variant` and `seed` columns."""
    df = list_runs(runs_dir)
    if df.empty or "tags" not in df:
        return df.assign(variant=[], seed=[])
    df = df[df["tags"].map(lambda t: _tag(t, "suite") == name)].copy()
    df["variant"] = df["tags"].map(lambda t: _tag(t, "variant"))
    df["seed"] = df["tags"].map(lambda t: _tag(t, "seed"))
    return df


def suite_report(name: str, runs_dir: Optional[Path] = None) -> pd.DataFrame:
    """Mean ± std per variant over completed repeats, best test accuracy first, with the train–val gap."""
    SUITES.get(name)
    df = suite_runs(name, runs_dir)
    columns = ["variant", "runs", "test_acc_mean", "test_acc_std", "test_macro_f1_mean", "best_val_acc_mean",
               "best_val_acc_std", "train_val_gap_mean", "epochs", "train_minutes_mean"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    df = df[df["status"] == "completed"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    grouped = df.groupby("variant")
    report = pd.DataFrame({
        "runs": grouped.size(),
        "test_acc_mean": grouped["test_acc"].mean(), "test_acc_std": grouped["test_acc"].std(ddof=1),
        "test_macro_f1_mean": grouped["test_macro_f1"].mean(),
        "best_val_acc_mean": grouped["best_val_acc"].mean(), "best_val_acc_std": grouped["best_val_acc"].std(ddof=1),
        "train_val_gap_mean": grouped["train_val_gap"].mean(),
        "epochs": grouped["epochs_done"].max(),
        "train_minutes_mean": grouped["train_seconds"].mean() / 60,
    }).reset_index()
    order = SUITES.get(name)(1)
    rank = {v.name: i for i, v in enumerate(order)}
    report["_rank"] = report["variant"].map(rank)
    report = report.sort_values(["test_acc_mean", "best_val_acc_mean", "_rank"], ascending=[False, False, True],
                                na_position="last")
    return report.drop(columns="_rank").reset_index(drop=True)[columns]
