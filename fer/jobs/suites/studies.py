"""The five FER2013 studies' ladders as suites, each rung trained as its study trained it.

One suite per experiment, registered as `study-<key>-<experiment>`; what each study did and reported is
its `Study` record (`fer.jobs.suites.study_records`). Where a study gives parameter counts, the suite's
models match them within 5% (`tests/test_studies.py`); Study E's nets match its listings layer by layer
(`tests/test_study_nets.py`). Each study's best model is also a ready recipe (`study_recipe`, and
`configs/studies/*.yaml`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

from fer.config import RunConfig, apply, load_config
from fer.core.constants import BOTH_TESTS, split_parts
from fer.jobs.suites._registry import SUITES, Variant, merge, plain_cnn
from fer.jobs.suites.study_records import STUDIES

# --- Study A: ResNet-34 transfer learning and an optimizer comparison ---------------------------------------

A_BASE: Dict[str, Any] = {
    # Gray copied to 3 channels and upsampled to 224×224 inside the model (the ImageNet stem is kept).
    "model": {"name": "resnet34", "kwargs": {"pretrained": True, "channels": "repeat", "stem": "imagenet",
                                             "head_dropout": 0.2}},
    # The study's normalisation, (x − 0.5) / 0.5, the same in training and on the webcam.
    "data": {"sampler": "weighted", "mean": 0.5, "std": 0.5},
    "loss": {"label_smoothing": 0.1},
    "augmentation": "custom",
    "aug": {"crop": "resized", "crop_scale": [0.8, 1.0], "flip": True, "rotation": 10.0, "erasing": 0.25,
            "erasing_scale": [0.02, 0.1]},
    "train": {"batch_size": 64, "amp": "auto", "grad_clip": 1.0},
    "sched": {"name": "onecycle"},
}
# Each optimizer's backbone learning rate is a tenth of its head's, as the study's layer4 phase had.
# Weight decay only where the study's optimizer has it (AdamW's, at PyTorch's default); the SGD and Kacı
# updates it writes out have none.
A_OPTIMIZERS = {
    "adamw": {"name": "adamw", "lr": 1e-3, "backbone_lr": 1e-4, "weight_decay": 1e-2},
    "sgd": {"name": "sgd", "lr": 1e-2, "backbone_lr": 1e-3, "momentum": 0.9, "nesterov": True,
            "weight_decay": 0.0},
    "kacifann": {"name": "kacifann", "lr": 0.1, "backbone_lr": 0.01, "weight_decay": 0.0},
    "momentum-kaci": {"name": "momentum_kaci", "lr": 0.02, "backbone_lr": 0.002, "momentum": 0.9,
                      "weight_decay": 0.0},
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
                          "augmentation": "none", "data": {"test_split": "PrivateTest"},
                          # Its runs stopped early, after 20 to 29 epochs.
                          "train": {"early_stop_patience": 5}}


def b_project(name: str) -> Dict[str, Any]:
    """The W&B project each of Study B's experiments logged to."""
    return {"tracking": {"wandb_project": name}}
B_AUGMENT: Dict[str, Any] = {"augmentation": "custom",
                             "aug": {"crop": "pad", "crop_padding": 4, "flip": True, "rotation": 10.0}}


def b_net(layers: int = 5, batchnorm: bool = False, dropout: float = 0.0, **extra: Any) -> Dict[str, Any]:
    """Study B's net: `layers` conv layers (pooled after the first four), a 2048-wide FC layer, PyTorch's init.

    The last map is flattened as it is (24×24 after one layer), the head that lets the 1-layer net reach
    the 86.7% train accuracy the study reports.
    """
    side = 48 // 2 ** min(layers, 4)
    return plain_cnn(widths=list(B_WIDTHS[:layers]), convs_per_block=1, batchnorm=batchnorm,
                     dropout=0.25 if dropout else 0.0, fc_dropout=0.5 if dropout else 0.0, hidden=2048,
                     kaiming_init=False, head_pool=side, **extra)


@SUITES.register("study-b-depth", title="Study B, experiment 1: 1 / 3 / 5 / 7 conv layers, no BN, dropout or "
                                        "augmentation", study="b", reported="7 layers collapse to 24.5%")
def study_b_depth(epochs: int) -> List[Variant]:
    """Study B's depth experiment: plain stacks of single conv layers."""
    return [Variant(f"{n}-layers", merge(B_BASE, b_net(n), b_project("depth_experiment"))) for n in (1, 3, 5, 7)]


@SUITES.register("study-b-regularization", title="Study B, experiment 2: none / BN / dropout / BN + dropout / "
                                                 "augmentation only, 5 layers",
                 study="b", reported="BN best 62.4% val; augmentation only worst, 32.4% val")
def study_b_regularization(epochs: int) -> List[Variant]:
    """Study B's regularization experiment on its 5-layer net."""
    base = merge(B_BASE, b_project("regularization_exp"))
    return [
        Variant("none", merge(base, b_net())),
        Variant("batchnorm", merge(base, b_net(batchnorm=True))),
        Variant("dropout", merge(base, b_net(dropout=True))),
        Variant("bn+dropout", merge(base, b_net(batchnorm=True, dropout=True))),
        Variant("augmentation", merge(base, b_net(), B_AUGMENT)),
    ]


@SUITES.register("study-b-architecture", title="Study B, experiment 3: BN baseline / + attention / + skip / "
                                               "both, 5 layers", study="b", reported="BN + skip best, 62.9% val")
def study_b_architecture(epochs: int) -> List[Variant]:
    """Study B's architecture experiment: squeeze-excitation attention (reduction 16) and skip connections."""
    se = {"attention": "se", "attention_reduction": 16}
    base = merge(B_BASE, b_project("advanced_architecture_experiment"))
    return [
        Variant("bn-baseline", merge(base, b_net(batchnorm=True))),
        Variant("attention", merge(base, b_net(batchnorm=True, **se))),
        Variant("skip", merge(base, b_net(batchnorm=True, residual=True))),
        Variant("skip+attention", merge(base, b_net(batchnorm=True, residual=True, **se))),
    ]


# --- Study C: Deep-Emotion and a scheduler comparison --------------------------------------------------------

C_BASE: Dict[str, Any] = {
    # 70% of Training to train on, the other 30% the study's test set: here the validation split, so that
    # the study's numbers compare with our validation accuracy; PublicTest stays the untouched test.
    "model": {"name": "deep_emotion", "kwargs": {}}, "augmentation": "none",
    "data": {"val_fraction": 0.3, "val_stratify": False},
    "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}, "train": {"batch_size": 128},
}


@SUITES.register("study-c-schedulers", title="Study C: Deep-Emotion (attentional CNN with a spatial transformer) "
                                             "with StepLR 10/0.1, MultiStep [10, 20, 50], Cosine and Plateau on a "
                                             "70/30 split of Training",
                 study="c", reported="StepLR 54% at epoch 50; Cosine 59% at epoch 100; lr 0.1 stuck at 24%")
def study_c_schedulers(epochs: int) -> List[Variant]:
    """Study C's scheduler comparison with its own settings, plus its first try at learning rate 0.1."""
    return [
        Variant("steplr", merge(C_BASE, {"sched": {"name": "step", "step_size": 10, "gamma": 0.1}})),
        Variant("multistep", merge(C_BASE, {"sched": {"name": "multistep", "gamma": 0.1,
                                                      "milestones": [10, 20, 50]}})),
        Variant("cosine", merge(C_BASE, {"sched": {"name": "cosine"}})),  # T_max = the run's epochs, as written
        Variant("plateau", merge(C_BASE, {"sched": {"name": "plateau", "factor": 0.1, "patience": 3}})),
        Variant("lr-0.1", merge(C_BASE, {"optim": {"lr": 0.1}, "sched": {"name": "none"}})),
    ]


# --- Study D: the Kaggle basic → complex CNN ladder --------------------------------------------------------

D_BASE: Dict[str, Any] = {
    # Training + PublicTest pooled, a plain random 75/25 split, PrivateTest kept for the test; Adam throughout.
    "data": {"train_splits": ["Training", "PublicTest"], "val_fraction": 0.25, "val_stratify": False,
             "test_split": "PrivateTest"},
    "optim": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
    "sched": {"name": "none"},
    # From the start: faces tilted by up to 10° and, at random, turned by 180°.
    "augmentation": "custom", "aug": {"rotation": 10.0, "half_turn": 0.5},
}
# The complex CNN's later stages, as the study added them. Section 4's fixes: class-weighted loss, gradient
# clipping and a scheduler that halves the rate, with the transforms taken out (it overfitted).
D_FIXES: Dict[str, Any] = {
    "loss": {"class_weights": True}, "train": {"grad_clip": 1.0},
    "sched": {"name": "plateau", "patience": 3, "factor": 0.5},
    "augmentation": "none",
}
# Section 5: the transforms back, on fewer faces; the study kept this model's 62.7473%.
D_FINAL: Dict[str, Any] = merge(D_FIXES, {"augmentation": "custom",
                                          "aug": {"rotation": 10.0, "half_turn": 0.5, "probability": 0.25}})
# Its last try: a stronger cut than halving, patience 1, more epochs; Colab stopped it at epoch 23, no better.
D_LAST_TRY: Dict[str, Any] = merge(D_FINAL, {"sched": {"patience": 1, "factor": 0.1}, "train": {"epochs": 40}})


def d_basic(batchnorm: bool = False, dropout: bool = False) -> Dict[str, Any]:
    """Study D's basic net: 3 blocks of two 3×3 convs (32-64-128), the 6×6 map flattened, FC 256."""
    return plain_cnn(widths=[32, 64, 128], convs_per_block=2, batchnorm=batchnorm, dropout=0.25 if dropout else 0.0,
                     fc_dropout=0.5 if dropout else 0.0, head_pool=6, hidden=256, kaiming_init=True)


def d_complex() -> Dict[str, Any]:
    """Study D's complex CNN: 4 blocks of two 3×3 convs + BN (64→512), dropout 0.25 / 0.5, FC 512-256."""
    return plain_cnn(widths=[64, 128, 256, 512], convs_per_block=2, batchnorm=True, dropout=0.25, fc_dropout=0.5,
                     hidden=[512, 256], kaiming_init=True)


@SUITES.register("study-d-ladder", title="Study D: basic (lr 0.005) / + BN (lr 0.01) / + dropout / complex CNN / "
                                         "complex + fixes / + transforms back (final) / last try, on Training + "
                                         "PublicTest (75/25), tested on PrivateTest",
                 study="d", reported="complex CNN 61%, the final model 62.75%, on PrivateTest")
def study_d_ladder(epochs: int) -> List[Variant]:
    """Study D's ladder as it grew: each rung's own learning rate, the complex CNN's fixes in the study's order."""
    return [
        Variant("basic", merge(D_BASE, d_basic(), {"optim": {"lr": 0.005}})),
        Variant("bn", merge(D_BASE, d_basic(batchnorm=True))),
        Variant("bn+dropout", merge(D_BASE, d_basic(batchnorm=True, dropout=True))),
        Variant("complex", merge(D_BASE, d_complex())),
        Variant("complex-fixes", merge(D_BASE, d_complex(), D_FIXES)),
        Variant("complex-final", merge(D_BASE, d_complex(), D_FINAL)),
        Variant("complex-last-try", merge(D_BASE, d_complex(), D_LAST_TRY)),
    ]


# --- Study E: the W&B baseline → deeper → augmentation → CBAM ladder ---------------------------------------

E_BASE: Dict[str, Any] = {
    # A stratified 80/20 split of Training (22,967 / 5,742 faces), tested on PublicTest and PrivateTest
    # together (the study's 7,178 test faces); batch 64 and cross-entropy on every rung.
    "data": {"val_fraction": 0.2, "val_stratify": True, "test_split": BOTH_TESTS},
    "train": {"batch_size": 64},
    "augmentation": "none",
    "tracking": {"wandb_project": "facial-expression-recognition"},
}
# V3's list: ±15° rotation, flip, ±10% shift, 90–110% scale, shear, brightness/contrast jitter, erasing p 0.1.
E_V3_AUGMENT: Dict[str, Any] = {"augmentation": "custom", "aug": {
    "flip": True, "rotation": 15.0, "translate": 0.1, "scale": [0.9, 1.1], "shear": 10.0, "jitter": 0.2,
    "erasing": 0.1}}


def e_tags(model_type: str, experiment_type: str) -> List[str]:
    """The W&B tags Study E put on its runs (the trackers forward run tags)."""
    return [f"model_type:{model_type}", "dataset_version:fer2013-stratified-80-20", f"experiment_type:{experiment_type}"]


def e_rung(model: str, optim: Dict[str, Any], epochs: int, early_stop: int, plateau: int = 0,
           tags: Sequence[str] = ()) -> Dict[str, Any]:
    """One rung as the study trained it: its net, optimizer, length, early stopping and plateau patience."""
    sched = {"name": "plateau", "patience": plateau, "factor": 0.5} if plateau else {"name": "none"}
    return merge(E_BASE, {"model": {"name": model, "kwargs": {}}, "optim": optim, "sched": sched,
                          "train": {"epochs": epochs, "early_stop_patience": early_stop}, "tags": list(tags)})


@SUITES.register("study-e-ladder", title="Study E: Baseline V1/V2 → Deeper CNN V1/V2 → V3 augmentation → CBAM "
                                         "CNN, each net and recipe as listed, on a stratified 80/20 split of Training",
                 study="e", reported="Baseline V1 ~60% val (1,232,775 parameters); Deeper V1 57.72% val")
def study_e_ladder(epochs: int) -> List[Variant]:
    """Study E's ladder: each rung's own net, optimizer and length, tagged as the study tagged it in W&B."""
    adam = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0}
    adam_l2 = {**adam, "weight_decay": 1e-4}
    deeper_v2 = e_rung("study_e_deeper_v2", adam_l2, 30, 7, plateau=3, tags=e_tags("deeper_cnn_v2", "architecture"))
    return [
        Variant("baseline-v1", e_rung("study_e_baseline_v1", adam, 20, 5, tags=e_tags("simple_cnn_v1", "baseline"))),
        Variant("baseline-v2", e_rung("study_e_baseline_v2", {**adam_l2, "lr": 5e-4}, 20, 5, plateau=3,
                                      tags=e_tags("simple_cnn_v2", "regularization"))),
        Variant("deeper-v1", e_rung("study_e_deeper_v1", adam_l2, 40, 10, plateau=5,
                                    tags=e_tags("deeper_cnn_v1", "architecture"))),
        Variant("deeper-v2", deeper_v2),
        Variant("deeper-v3", merge(deeper_v2, E_V3_AUGMENT, {"tags": e_tags("deeper_cnn_v3", "augmentation")})),
        Variant("cbam", merge(e_rung("study_e_cbam", {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4}, 50, 7,
                                     plateau=3, tags=e_tags("cbam_cnn", "attention")),
                              {"augmentation": "custom", "aug": {"flip": True, "rotation": 15.0}})),
    ]


def study_recipe(key: str, epochs: int = 0, overrides: Sequence[str] = ()) -> RunConfig:
    """The study's best model as one run config, at the study's own length unless `epochs` is given."""
    study = STUDIES.get(key)
    suite, variant = study.best
    layer = next(v.layer for v in SUITES.get(suite)(epochs or study.recipe_epochs) if v.name == variant)
    own = layer.get("train", {}).get("epochs") or study.recipe_epochs
    cfg = load_config(None, overrides, layers=[layer, {"train": {"epochs": epochs or own}}])
    cfg.name = f"study-{key}-{variant}"
    shorter = [f"adapted:train.epochs={epochs}"] if epochs and epochs != own else []
    cfg.tags = [*cfg.tags, f"study:{key}", "recipe", *shorter]
    return cfg


def fit_to_data(cfg: RunConfig, available: Sequence[str]) -> RunConfig:
    """`cfg`, or a copy that runs on data without its test split (Kaggle folders: no PrivateTest), tagged so.

    The study's test split is then PublicTest, which leaves the training pool if it was in it; the
    tag `adapted:test_split=PublicTest` marks every such run in the leaderboard. A study that tests on
    both test splits (Study E) tests on both wherever both exist, as the study did.
    """
    if set(split_parts(cfg.data.test_split)) <= set(available) or "PublicTest" not in available:
        return cfg  # fits, or nothing to fall back to (check_config then says what is missing)
    train_splits = [s for s in cfg.data.train_splits if s != "PublicTest"] or ["Training"]
    fitted = apply(cfg, {"data.test_split": "PublicTest", "data.train_splits": train_splits})
    fitted.tags = [*cfg.tags, "adapted:test_split=PublicTest"]
    return fitted
