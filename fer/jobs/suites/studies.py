"""The five FER2013 studies our users come from, as suites that rerun their ladders and their reported numbers.

Each study is a `Study` (what it did, its split protocol, what it reported, where we had to choose a
reading of its text) plus one suite per experiment, registered as `study-<key>-<experiment>`. Where a
study gives parameter counts, the suite's models match them within 5% (`tests/test_studies.py`).
Each study's best model is also a ready recipe (`study_recipe`, and `configs/studies/*.yaml`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from fer.config import RunConfig, apply, load_config
from fer.core.registry import Registry
from fer.jobs.suites._registry import SUITES, Variant, merge, plain_cnn


@dataclass(frozen=True)
class Reported:
    """One row of a study's own results table."""

    suite: str
    variant: str  # our variant that reruns it
    what: str  # the study's name for it
    accuracy: Optional[float] = None  # as the study reported it (fraction); None: not reported
    parameters: Optional[int] = None  # as reported; None: not reported
    split: str = ""  # where the study measured the accuracy
    extra_over: str = ""  # parameters are counted over this variant's (the study gave only the difference)


@dataclass(frozen=True)
class Study:
    key: str
    title: str
    did: str  # what the study did, in a sentence or two
    protocol: str  # its split protocol
    readings: str  # where its text is ambiguous: the reading we chose, and why
    suites: Tuple[str, ...]
    best: Tuple[str, str]  # (suite, variant) of its best model: the recipe
    recipe_epochs: int  # the study's training length for that model
    reported: Tuple[Reported, ...]


STUDIES: Registry[Study] = Registry("study")

# --- Study A: ResNet-34 transfer learning and an optimizer comparison ---------------------------------------

A_BASE: Dict[str, Any] = {
    # Gray copied to 3 channels and upsampled to 224×224 inside the model (the ImageNet stem is kept).
    "model": {"name": "resnet34", "kwargs": {"pretrained": True, "channels": "repeat", "stem": "imagenet",
                                             "head_dropout": 0.2}},
    "data": {"sampler": "weighted"},
    "loss": {"label_smoothing": 0.1},
    "augmentation": "custom",
    "aug": {"crop": "resized", "crop_scale": [0.8, 1.0], "flip": True, "rotation": 10.0, "erasing": 0.25,
            "erasing_scale": [0.02, 0.1]},
    "train": {"batch_size": 64, "amp": "auto", "grad_clip": 1.0},
    "sched": {"name": "onecycle"},
}
# Each optimizer's backbone learning rate is a tenth of its head's, as the study's layer4 phase had.
A_OPTIMIZERS = {
    "adamw": {"name": "adamw", "lr": 1e-3, "backbone_lr": 1e-4, "weight_decay": 1e-2},
    "sgd": {"name": "sgd", "lr": 1e-2, "backbone_lr": 1e-3, "momentum": 0.9, "nesterov": True},
    "kacifann": {"name": "kacifann", "lr": 0.1, "backbone_lr": 0.01},
    "momentum-kaci": {"name": "momentum_kaci", "lr": 0.02, "backbone_lr": 0.002, "momentum": 0.9},
}


def a_freeze_epochs(epochs: int) -> int:
    """Head-only epochs before layer4 thaws: 'a few', a tenth of the run, 1 to 5."""
    return min(5, max(1, epochs // 10))


@SUITES.register("study-a-optimizers", title="Study A: ImageNet ResNet-34 at 224, head first, then layer4; "
                                             "AdamW / SGD / KacıFANN / Momentum-Kacı with OneCycle",
                 study="a", reported="AdamW + OneCycle ≈ 68.8% at epoch 100")
def study_a_optimizers(epochs: int) -> List[Variant]:
    """Study A's optimizer comparison on its transfer-learning recipe."""
    freeze = {"transfer": {"freeze_epochs": a_freeze_epochs(epochs), "unfreeze": ["layer4"]}}
    return [Variant(name, merge(A_BASE, freeze, {"optim": optim})) for name, optim in A_OPTIMIZERS.items()]


# --- Study B: a systematic CNN ladder (depth, regularization, architecture) ---------------------------------

B_WIDTHS = (32, 64, 128, 256, 512, 512, 512)  # one 3×3 conv per layer; widths double to 512, then hold
B_BASE: Dict[str, Any] = {"optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}, "sched": {"name": "none"},
                          "augmentation": "none", "data": {"test_split": "PrivateTest"}}
B_AUGMENT: Dict[str, Any] = {"augmentation": "custom",
                             "aug": {"crop": "pad", "crop_padding": 4, "flip": True, "rotation": 10.0}}


def b_net(layers: int = 5, batchnorm: bool = False, dropout: float = 0.0, **extra: Any) -> Dict[str, Any]:
    """Study B's net: `layers` conv layers (pooled after the first four), a 2048-wide FC layer, PyTorch's init."""
    return plain_cnn(widths=list(B_WIDTHS[:layers]), convs_per_block=1, batchnorm=batchnorm,
                     dropout=0.25 if dropout else 0.0, fc_dropout=0.5 if dropout else 0.0, hidden=2048,
                     kaiming_init=False, **extra)


@SUITES.register("study-b-depth", title="Study B, experiment 1: 1 / 3 / 5 / 7 conv layers, no BN, dropout or "
                                        "augmentation", study="b", reported="7 layers collapse to 24.5%")
def study_b_depth(epochs: int) -> List[Variant]:
    """Study B's depth experiment: plain stacks of single conv layers."""
    return [Variant(f"{n}-layers", merge(B_BASE, b_net(n))) for n in (1, 3, 5, 7)]


@SUITES.register("study-b-regularization", title="Study B, experiment 2: none / BN / dropout / BN + dropout / "
                                                 "augmentation only / all three, 5 layers",
                 study="b", reported="augmentation only is worst, 32.4%")
def study_b_regularization(epochs: int) -> List[Variant]:
    """Study B's regularization experiment on its 5-layer net."""
    return [
        Variant("none", merge(B_BASE, b_net())),
        Variant("batchnorm", merge(B_BASE, b_net(batchnorm=True))),
        Variant("dropout", merge(B_BASE, b_net(dropout=True))),
        Variant("bn+dropout", merge(B_BASE, b_net(batchnorm=True, dropout=True))),
        Variant("augmentation", merge(B_BASE, b_net(), B_AUGMENT)),
        Variant("bn+dropout+augmentation", merge(B_BASE, b_net(batchnorm=True, dropout=True), B_AUGMENT)),
    ]


@SUITES.register("study-b-architecture", title="Study B, experiment 3: BN baseline / + attention / + skip / "
                                               "both, 5 layers", study="b", reported="BN + skip best, 62.9%")
def study_b_architecture(epochs: int) -> List[Variant]:
    """Study B's architecture experiment: squeeze-excitation attention (reduction 16) and skip connections."""
    se = {"attention": "se", "attention_reduction": 16}
    return [
        Variant("bn-baseline", merge(B_BASE, b_net(batchnorm=True))),
        Variant("attention", merge(B_BASE, b_net(batchnorm=True, **se))),
        Variant("skip", merge(B_BASE, b_net(batchnorm=True, residual=True))),
        Variant("skip+attention", merge(B_BASE, b_net(batchnorm=True, residual=True, **se))),
    ]


# --- Study C: Deep-Emotion and a scheduler comparison --------------------------------------------------------

C_BASE: Dict[str, Any] = {"model": {"name": "deep_emotion", "kwargs": {}}, "augmentation": "none",
                          "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}, "train": {"batch_size": 128}}


@SUITES.register("study-c-schedulers", title="Study C: Deep-Emotion (attentional CNN with a spatial transformer) "
                                             "with StepLR 10/0.1, MultiStep, Cosine and Plateau",
                 study="c", reported="Deep-Emotion: 70.02% (Minaee et al.)")
def study_c_schedulers(epochs: int) -> List[Variant]:
    """Study C's scheduler comparison; StepLR keeps the study's 10 / 0.1 whatever the run length."""
    return [
        Variant("steplr", merge(C_BASE, {"sched": {"name": "step", "step_size": 10, "gamma": 0.1}})),
        Variant("multistep", merge(C_BASE, {"sched": {"name": "multistep", "gamma": 0.1, "milestones": [
            max(1, epochs // 2), max(2, 3 * epochs // 4)]}})),
        Variant("cosine", merge(C_BASE, {"sched": {"name": "cosine"}})),
        Variant("plateau", merge(C_BASE, {"sched": {"name": "plateau", "factor": 0.1,
                                                    "patience": max(1, epochs // 10)}})),
    ]


# --- Study D: the Kaggle basic → complex CNN ladder --------------------------------------------------------

D_BASE: Dict[str, Any] = {
    # Training + PublicTest pooled, a plain random 75/25 split, PrivateTest kept for the test.
    "data": {"train_splits": ["Training", "PublicTest"], "val_fraction": 0.25, "val_stratify": False,
             "test_split": "PrivateTest"},
    "loss": {"class_weights": True},
    "train": {"grad_clip": 1.0},
    "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
    "sched": {"name": "plateau", "patience": 1, "factor": 0.1},
    "augmentation": "custom", "aug": {"rotation": 180.0},
}


def d_basic(batchnorm: bool = False, dropout: bool = False) -> Dict[str, Any]:
    """Study D's basic net: 3 blocks of two 3×3 convs (32-64-128), the 6×6 map flattened, FC 256."""
    return plain_cnn(widths=[32, 64, 128], convs_per_block=2, batchnorm=batchnorm, dropout=0.25 if dropout else 0.0,
                     fc_dropout=0.5 if dropout else 0.0, head_pool=6, hidden=256, kaiming_init=True)


@SUITES.register("study-d-ladder", title="Study D: basic / + BN / + BN + dropout (0.25 / 0.5) / complex CNN on "
                                         "Training + PublicTest (75/25), tested on PrivateTest",
                 study="d", reported="61% then 62.75% on PrivateTest")
def study_d_ladder(epochs: int) -> List[Variant]:
    """Study D's ladder with class-weighted loss, clipping, plateau decay (patience 1) and 180° rotations."""
    return [
        Variant("basic", merge(D_BASE, d_basic())),
        Variant("bn", merge(D_BASE, d_basic(batchnorm=True))),
        Variant("bn+dropout", merge(D_BASE, d_basic(batchnorm=True, dropout=True))),
        Variant("complex", merge(D_BASE, plain_cnn(widths=[64, 128, 256, 512], convs_per_block=2, batchnorm=True,
                                                   dropout=0.25, fc_dropout=0.5, hidden=[512, 256],
                                                   kaiming_init=True))),
    ]


# --- Study E: the W&B baseline → deeper → augmentation → CBAM ladder ---------------------------------------

E_BASE: Dict[str, Any] = {
    # A stratified 80/20 split of Training: 22,967 / 5,742 faces.
    "data": {"val_fraction": 0.2, "val_stratify": True},
    "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
    "sched": {"name": "plateau", "patience": 3, "factor": 0.5},
    "augmentation": "none",
}
E_AUGMENT: Dict[str, Any] = {"augmentation": "custom", "aug": {"crop": "resized", "crop_scale": [0.8, 1.0],
                                                               "flip": True, "rotation": 15.0, "translate": 0.1}}


def e_tags(model_type: str, experiment_type: str) -> List[str]:
    """The W&B tags Study E put on its runs (the trackers forward run tags)."""
    return [f"model_type:{model_type}", "dataset_version:fer2013-stratified-80-20", f"experiment_type:{experiment_type}"]


def e_net(widths: Sequence[int], attention: str = "none") -> Dict[str, Any]:
    """Study E's nets: blocks of two 3×3 convs + BN (attention before pooling), global average pool, FC 256."""
    return plain_cnn(widths=list(widths), convs_per_block=2, batchnorm=True, dropout=0.0, fc_dropout=0.5,
                     head_pool=1, hidden=256, attention=attention)


@SUITES.register("study-e-ladder", title="Study E: Baseline V1 / Deeper CNN / V3 augmentation / CBAM CNN on a "
                                         "stratified 80/20 split of Training",
                 study="e", reported="Baseline V1 1,232,775 parameters; CBAM CNN ~0.33 M")
def study_e_ladder(epochs: int) -> List[Variant]:
    """Study E's ladder, each run tagged as the study tagged it in W&B."""
    deeper = e_net([32, 64, 128, 256, 512])
    return [
        Variant("baseline-v1", merge(E_BASE, e_net([32, 64, 128, 256]), {"tags": e_tags("baseline_v1", "baseline")})),
        Variant("deeper", merge(E_BASE, deeper, {"tags": e_tags("deeper_cnn", "architecture")})),
        Variant("v3-augmentation", merge(E_BASE, deeper, E_AUGMENT,
                                         {"tags": e_tags("deeper_cnn", "augmentation")})),
        Variant("cbam", merge(E_BASE, e_net([32, 64, 128], attention="cbam"),
                              {"tags": e_tags("cbam_cnn", "attention")})),
    ]


# --- The studies -----------------------------------------------------------------------------------------------

STUDIES.register("a")(Study(
    "a", "ResNet-34 transfer learning and optimizers",
    "ImageNet ResNet-34 (gray copied to 3 channels, 224×224, head = dropout 0.2 + linear): head alone for a few "
    "epochs, then layer4 with a lower backbone learning rate; weighted sampler, label smoothing 0.1, AMP and "
    "clipping; AdamW, SGD, KacıFANN and Momentum-Kacı with OneCycle.",
    "Training (validation carved from it) · PublicTest",
    "'A few' head-only epochs: a tenth of the run, 1 to 5. 'Light' RandomErasing: p 0.25, 2–10% of the area. "
    "Each optimizer's backbone rate is a tenth of its head rate.",
    ("study-a-optimizers",), ("study-a-optimizers", "adamw"), 100,
    (Reported("study-a-optimizers", "adamw", "AdamW + OneCycle (epoch 100)", 0.688, None, "PublicTest"),
     Reported("study-a-optimizers", "sgd", "SGD"), Reported("study-a-optimizers", "kacifann", "KacıFANN"),
     Reported("study-a-optimizers", "momentum-kaci", "Momentum-Kacı"))))

STUDIES.register("b")(Study(
    "b", "A systematic CNN ladder",
    "Three experiments on a plain CNN: depth (1/3/5/7 conv layers, nothing else), regularization (BN, dropout, "
    "augmentation, alone and combined, 5 layers) and architecture (attention and skip connections on the BN "
    "baseline).",
    "Training (validation carved from it) · PrivateTest",
    "Widths 32→512 doubling, one conv per layer, pooled after the first four, FC 2048: this reading gives the "
    "study's ~11.3 M parameters for the combined net (11.24 M) and ~45 K for attention (squeeze-excitation, "
    "reduction 16: 44,832). Adam 1e-3, no schedule. Dropout: 0.25 spatial, 0.5 before the FC layers.",
    ("study-b-depth", "study-b-regularization", "study-b-architecture"), ("study-b-architecture", "skip"), 30,
    (Reported("study-b-depth", "1-layers", "1 conv layer"), Reported("study-b-depth", "3-layers", "3 conv layers"),
     Reported("study-b-depth", "5-layers", "5 conv layers"),
     Reported("study-b-depth", "7-layers", "7 conv layers", 0.245, None, "PrivateTest"),
     Reported("study-b-regularization", "augmentation", "augmentation only", 0.324, None, "PrivateTest"),
     Reported("study-b-architecture", "attention", "BN + attention (params: extra)", None,
              45_000, extra_over="bn-baseline"),
     Reported("study-b-architecture", "skip", "5-layer BN + skip (best)", 0.629, None, "PrivateTest"),
     Reported("study-b-architecture", "skip+attention", "BN + attention + skip", None, 11_300_000))))

STUDIES.register("c")(Study(
    "c", "Deep-Emotion and schedulers",
    "Deep-Emotion (Minaee et al. 2019): an attentional CNN with a spatial transformer (66,877 parameters); "
    "StepLR (10, 0.1), MultiStep, Cosine and Plateau compared.",
    "Training (validation carved from it) · PublicTest",
    "Adam 1e-3, batch 128, no augmentation; MultiStep at 1/2 and 3/4 of the run, Plateau ×0.1.",
    ("study-c-schedulers",), ("study-c-schedulers", "steplr"), 100,
    (Reported("study-c-schedulers", "steplr", "Deep-Emotion, StepLR 10/0.1", 0.7002, 66_877, "paper's FER2013 test"),
     Reported("study-c-schedulers", "multistep", "MultiStep"), Reported("study-c-schedulers", "cosine", "Cosine"),
     Reported("study-c-schedulers", "plateau", "Plateau"))))

STUDIES.register("d")(Study(
    "d", "Kaggle basic → complex CNN",
    "Training + PublicTest merged, a random 75/25 split, PrivateTest as the test; basic CNN → + BN → + BN + "
    "dropout (0.25 / 0.5) → complex CNN; Kaiming init, class-weighted loss, clipping, ReduceLROnPlateau "
    "(patience 1) and random rotations of up to 180°.",
    "Training + PublicTest (75% train / 25% validation, random) · PrivateTest",
    "Basic: 3 blocks of two convs (32-64-128), FC 256; complex: 4 blocks (64→512), FC 512-256. The study's "
    "61% is read as its BN + dropout net and 62.75% as its complex CNN.",
    ("study-d-ladder",), ("study-d-ladder", "complex"), 30,
    (Reported("study-d-ladder", "basic", "basic CNN"), Reported("study-d-ladder", "bn", "+ BN"),
     Reported("study-d-ladder", "bn+dropout", "+ BN + dropout", 0.61, None, "PrivateTest"),
     Reported("study-d-ladder", "complex", "complex CNN", 0.6275, None, "PrivateTest"))))

STUDIES.register("e")(Study(
    "e", "W&B baseline → deeper → CBAM",
    "A stratified 80/20 split of Training (22,967 / 5,742); Baseline V1 (1,232,775 parameters), a deeper CNN, "
    "V3 with augmentation, and a CBAM CNN (~0.33 M parameters, attention before pooling); runs tagged "
    "model_type, dataset_version and experiment_type in W&B, config and weights as artifacts.",
    "Training (80% train / 20% validation, stratified) · PublicTest",
    "Baseline V1: 4 blocks of two convs + BN (32→256), global average pool, FC 256 (1,240,231: +0.6%). "
    "Deeper: a fifth block (512). CBAM: 3 blocks (32→128), CBAM before each pool (327,628).",
    ("study-e-ladder",), ("study-e-ladder", "cbam"), 30,
    (Reported("study-e-ladder", "baseline-v1", "Baseline V1", None, 1_232_775),
     Reported("study-e-ladder", "deeper", "Deeper CNN"), Reported("study-e-ladder", "v3-augmentation", "V3"),
     Reported("study-e-ladder", "cbam", "CBAM CNN", None, 330_000))))


def study_recipe(key: str, epochs: int = 0, overrides: Sequence[str] = ()) -> RunConfig:
    """The study's best model as one run config, at the study's own length unless `epochs` is given."""
    study = STUDIES.get(key)
    suite, variant = study.best
    epochs = epochs or study.recipe_epochs
    layer = next(v.layer for v in SUITES.get(suite)(epochs) if v.name == variant)
    cfg = load_config(None, overrides, layers=[layer, {"train": {"epochs": epochs}}])
    cfg.name = f"study-{key}-{variant}"
    cfg.tags = [*cfg.tags, f"study:{key}", "recipe"]
    return cfg


def fit_to_data(cfg: RunConfig, available: Sequence[str]) -> RunConfig:
    """`cfg`, or a copy that runs on data without its test split (Kaggle folders: no PrivateTest), tagged so.

    The study's test split is then PublicTest, which leaves the training pool if it was in it; the
    tag `adapted:test_split=PublicTest` marks every such run in the leaderboard.
    """
    if cfg.data.test_split in available or "PublicTest" not in available:
        return cfg  # fits, or nothing to fall back to (check_config then says what is missing)
    train_splits = [s for s in cfg.data.train_splits if s != "PublicTest"] or ["Training"]
    fitted = apply(cfg, {"data.test_split": "PublicTest", "data.train_splits": train_splits})
    fitted.tags = [*cfg.tags, "adapted:test_split=PublicTest"]
    return fitted


def model_parameters(cfg: RunConfig) -> int:
    """Parameters of the config's model, counted on PyTorch's meta device (no memory, no weights fetched)."""
    import torch  # only here: the suites' listings and reports need no PyTorch

    from fer.models import count_parameters, create_model

    kwargs = {k: v for k, v in cfg.model.kwargs.items() if k not in ("pretrained", "weights_path")}
    with torch.device("meta"):
        return count_parameters(create_model(cfg.model.name, num_classes=7, in_chans=cfg.model.in_chans, **kwargs))


def study_table(key: str, report: Dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every variant of the study's suites, with what the study reported for it beside our suite reports.

    `report` maps a suite name to its `suite_report` frame; a variant the study gave no figure for
    still gets a row (our number, the parameter count), so a ladder reads whole.
    """
    study = STUDIES.get(key)
    reported = {(r.suite, r.variant): r for r in study.reported}
    rows = []
    for suite in study.suites:
        configs = dict(_variant_configs(suite))
        ours = report.get(suite, pd.DataFrame())
        for variant, cfg in configs.items():
            r = reported.get((suite, variant), Reported(suite, variant, variant))
            mine = ours[ours["variant"] == variant] if not ours.empty else ours
            params = model_parameters(cfg)
            if r.extra_over:
                params -= model_parameters(configs[r.extra_over])
            acc = float(mine["test_acc_mean"].iloc[0]) if len(mine) else math.nan
            rows.append({
                "suite": suite, "variant": variant, "study's model": r.what,
                "reported acc": r.accuracy if r.accuracy is not None else math.nan,
                "reported on": r.split, "ours acc": acc,
                "ours ± std": float(mine["test_acc_std"].iloc[0]) if len(mine) else math.nan,
                "gap": acc - r.accuracy if r.accuracy is not None else math.nan,
                "runs": int(mine["runs"].iloc[0]) if len(mine) else 0,
                "epochs": int(mine["epochs"].iloc[0]) if len(mine) and not pd.isna(mine["epochs"].iloc[0]) else 0,
                "reported params": r.parameters if r.parameters is not None else math.nan,
                "ours params": params,
                "adapted": str(mine["adapted"].iloc[0]) if len(mine) and "adapted" in mine else "",
            })
    table = pd.DataFrame(rows)
    return table.astype({"reported params": "Int64", "ours params": "Int64"})


def _variant_configs(suite: str) -> List[Tuple[str, RunConfig]]:
    return [(v.name, load_config(None, (), layers=[v.layer])) for v in SUITES.get(suite)(1)]
