"""General ablation ladders of the workbench (not any one study's protocol: see `studies` for those).

`depth` and `regularization` use blocks of two 3×3 convs with Kaiming init and the 256-wide head;
Study B's own ladders (one conv per layer, its widths and its 2048-wide head) are `study-b-depth`
and `study-b-regularization`.
"""
from __future__ import annotations

from typing import List

from fer.jobs.suites._registry import SUITES, Variant, merge, plain_cnn


@SUITES.register("depth", title="Plain CNN with 1, 3, 5 and 7 conv blocks (BN + dropout)")
def depth_suite(epochs: int) -> List[Variant]:
    """Depth ladder: blocks of two 3×3 convs; after four poolings deeper blocks keep the 3×3 map."""
    return [Variant(f"depth{d}", plain_cnn(depth=d)) for d in (1, 3, 5, 7)]


@SUITES.register("regularization", title="None / BatchNorm / dropout / BN + dropout / BN + dropout + augmentation")
def regularization_suite(epochs: int) -> List[Variant]:
    """Regularisation ladder on the 4-block plain CNN."""
    off = {"augmentation": "none"}
    return [
        Variant("none", {**off, **plain_cnn(batchnorm=False, dropout=0.0, fc_dropout=0.0)}),
        Variant("batchnorm", {**off, **plain_cnn(batchnorm=True, dropout=0.0, fc_dropout=0.0)}),
        Variant("dropout", {**off, **plain_cnn(batchnorm=False, dropout=0.1, fc_dropout=0.5)}),
        Variant("bn+dropout", {**off, **plain_cnn(batchnorm=True, dropout=0.1, fc_dropout=0.5)}),
        Variant("bn+dropout+aug", {"augmentation": "standard", **plain_cnn(batchnorm=True, dropout=0.1, fc_dropout=0.5)}),
    ]


@SUITES.register("architecture", title="BN baseline / +SE attention / +skip / combo / CBAM / Deep-Emotion")
def architecture_suite(epochs: int) -> List[Variant]:
    """Architecture ladder: attention and skip connections on the BN baseline, then CBAM and Deep-Emotion."""
    return [
        Variant("bn-baseline", plain_cnn()),
        Variant("attention", plain_cnn(attention="se")),
        Variant("skip", plain_cnn(residual=True)),
        Variant("skip+attention", plain_cnn(residual=True, attention="se")),
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
        Variant("step", merge(sgd, {"sched": {"name": "step", "step_size": third, "gamma": 0.1}})),
        Variant("multistep", merge(sgd, {"sched": {"name": "multistep", "gamma": 0.1,
                                                    "milestones": [max(1, epochs // 2), max(2, 3 * epochs // 4)]}})),
        Variant("cosine", merge(sgd, {"sched": {"name": "cosine"}})),
        Variant("plateau", merge(sgd, {"sched": {"name": "plateau", "patience": max(1, epochs // 10),
                                                  "factor": 0.5}})),
        Variant("onecycle", merge(sgd, {"sched": {"name": "onecycle", "max_lr": 0.05}})),
    ]


@SUITES.register("transfer", title="ImageNet ResNet-18/34: frozen backbone → layer4 unfrozen vs full fine-tune")
def transfer_suite(epochs: int) -> List[Variant]:
    """Transfer ladder: head-only warm-up then layer4 (10× lower backbone lr) vs full fine-tuning."""
    freeze = max(1, epochs // 5)
    out = []
    for arch in ("resnet18", "resnet34"):
        model = {"model": {"name": arch, "kwargs": {"pretrained": True, "channels": "sum", "stem": "small"}}}
        out.append(Variant(f"{arch}-frozen-then-layer4", merge(model, {
            "optim": {"name": "adamw", "lr": 1e-3, "backbone_lr": 1e-4},
            "transfer": {"freeze_epochs": freeze, "unfreeze": ["layer4"]}})))
        out.append(Variant(f"{arch}-full-finetune", merge(model, {
            "optim": {"name": "adamw", "lr": 1e-3, "backbone_lr": 0.0}, "transfer": {"freeze_epochs": 0}})))
    return out


