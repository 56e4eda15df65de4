"""Checking a run config before a run folder exists: every impossible setting fails at once, with one
clear message, and costly ones come back as warnings.

The checks cover the registry names and fixed choices, the numbers (a negative learning rate, a zero
batch, a validation split that is the test split), the model itself (built on PyTorch's meta device,
so a 100 M-parameter network costs no memory here, and run once on a meta batch so shape errors show
now), and the data (the source exists and every split the run needs has images).
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Tuple

import torch

from fer.config import ConfigError, FIXED_CHOICES, FieldSpec, RunConfig, field_specs, get_field
from fer.core.constants import split_parts
from fer.core.device import amp_dtype, amp_warning, select_device
from fer.core.text import check_name, check_tags
from fer.data import RunData, default_data_path, run_class_names
from fer.data.augment import AUGMENTATIONS
from fer.data.batched import batched_augmentation
from fer.inference.blendshapes import KIND as BLENDSHAPE_KIND
from fer.models import MODELS, count_parameters, create_model
from fer.models.pretrained import check_pretrained
from fer.training.distill import check_teacher
from fer.training.ensemble import check_ensemble
from fer.training.optim import OPTIMIZERS, SCHEDULERS

# Above this many parameters a model is worth a warning: the default CNN has 1.8 M, ResNet-34 21 M.
LARGE_MODEL_PARAMETERS = 25_000_000
MAX_INPUT_SIZE = 512  # what a checkpoint may claim too (fer.runs.checkpoint)
MAX_PROCESSES = 256  # train.gpus and data.num_workers: more than any one machine or job runs
MAX_LAYERS = 128  # model.kwargs.depth and similar counts (99 builds 114 M parameters: costly, so a warning)

_RANGES: List[Tuple[str, Callable[[Any], bool], str]] = [
    ("train.epochs", lambda v: v >= 1, "at least 1"),
    ("train.batch_size", lambda v: v >= 1, "at least 1"),
    ("train.eval_batch_size", lambda v: v >= 1, "at least 1"),
    ("train.gpus", lambda v: v >= 1, "at least 1"),
    ("train.global_batch", lambda v: v >= 0, "0 (batch_size × gpus) or more"),
    ("train.grad_clip", lambda v: v >= 0, "0 (off) or more"),
    ("train.early_stop_patience", lambda v: v >= 0, "0 (off) or more"),
    ("optim.lr", lambda v: v > 0, "more than 0"),
    ("optim.weight_decay", lambda v: v >= 0, "0 or more"),
    ("optim.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim.backbone_lr", lambda v: v >= 0, "0 (same as lr) or more"),
    ("optim.alpha", lambda v: v > 0, "more than 0"),
    ("optim.eps", lambda v: v > 0, "more than 0"),
    ("optim.w_floor", lambda v: v > 0, "more than 0"),
    ("optim.ratio_max", lambda v: v >= 1, "at least 1"),
    ("optim.update_clip", lambda v: v > 0, "more than 0"),
    ("sched.max_lr", lambda v: v >= 0, "0 (optim.lr) or more"),
    ("sched.pct_start", lambda v: 0 < v < 1, "in (0, 1)"),
    ("sched.step_size", lambda v: v >= 1, "at least 1"),
    ("sched.gamma", lambda v: v > 0, "more than 0"),
    ("sched.factor", lambda v: 0 < v < 1, "in (0, 1)"),
    ("sched.patience", lambda v: v >= 0, "0 or more"),
    ("sched.warmup_epochs", lambda v: v >= 0, "0 or more"),
    ("sched.min_lr", lambda v: v >= 0, "0 or more"),
    ("loss.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data.val_fraction", lambda v: 0 < v < 1, "in (0, 1)"),
    ("data.limit", lambda v: v >= 0, "0 (all) or more"),
    ("data.test_limit", lambda v: v >= 0, "0 (all) or more"),
    ("data.split_seed", lambda v: v >= -1, "-1 (train.seed) or 0 or more"),
    ("data.num_workers", lambda v: v >= 0, "0 or more"),
    ("data.std", lambda v: v > 0, "more than 0"),
    ("model.input_size", lambda v: 8 <= v <= MAX_INPUT_SIZE, f"in [8, {MAX_INPUT_SIZE}]"),
    ("model.in_chans", lambda v: v in (1, 3), "1 (gray) or 3"),
    ("train.gpus", lambda v: v <= MAX_PROCESSES, f"at most {MAX_PROCESSES}"),
    ("data.num_workers", lambda v: v <= MAX_PROCESSES, f"at most {MAX_PROCESSES}"),
    ("optim.betas", lambda v: _is_pair(v, 0, 1), "two numbers in [0, 1), e.g. [0.9, 0.999]"),
    ("transfer.freeze_epochs", lambda v: v >= 0, "0 or more"),
    ("distill.weight", lambda v: 0 <= v <= 1, "a share in [0, 1]"),
    ("distill.temperature", lambda v: 0 < v <= 20, "in (0, 20]"),
    ("aug.crop_padding", lambda v: v >= 0, "0 or more"),
    ("aug.rotation", lambda v: 0 <= v <= 180, "in [0, 180] degrees"),
    ("aug.translate", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("aug.shear", lambda v: 0 <= v < 90, "in [0, 90) degrees"),
    ("aug.half_turn", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    ("aug.probability", lambda v: 0 < v <= 1, "a share in (0, 1]"),
    ("aug.scale", lambda v: _is_range(v, 0, 4), "two numbers 0 < low ≤ high ≤ 4"),
    ("aug.jitter", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("aug.erasing", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    ("aug.crop_scale", lambda v: _is_range(v, 0, 1), "two numbers 0 < low ≤ high ≤ 1"),
    ("aug.crop_ratio", lambda v: _is_range(v, 0, math.inf), "two numbers 0 < low ≤ high"),
    ("aug.erasing_scale", lambda v: _is_range(v, 0, 1), "two numbers 0 < low ≤ high ≤ 1"),
]


def _is_range(value: Any, low: float, high: float) -> bool:
    """A [lo, hi] pair of numbers with low < lo ≤ hi ≤ high."""
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
            and low < value[0] <= value[1] <= high)


def _is_pair(value: Any, low: float, high: float) -> bool:
    """Two finite numbers in [low, high)."""
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v < high for v in value))


def config_fields() -> List[FieldSpec]:
    """Every config field with its choices: the fixed lists and the registries' names."""
    return field_specs({**FIXED_CHOICES, "model.name": MODELS.names(), "optim.name": OPTIMIZERS.names(),
                        "sched.name": SCHEDULERS.names(), "augmentation": AUGMENTATIONS.names()})


def _check_choices(cfg: RunConfig) -> None:
    chosen = [(AUGMENTATIONS, cfg.augmentation)]
    if cfg.model.name != BLENDSHAPE_KIND:  # a feature run's optim/sched fields only describe its fitted classifier
        chosen += [(MODELS, cfg.model.name), (OPTIMIZERS, cfg.optim.name), (SCHEDULERS, cfg.sched.name)]
    for registry, name in chosen:
        if name not in registry:
            raise ConfigError(f"unknown {registry.kind} {name!r}; choose from: {', '.join(registry.names())}")
    for key, choices in FIXED_CHOICES.items():
        if key != "train.device" and get_field(cfg, key) not in choices:  # devices: cuda:1 is fine too
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {get_field(cfg, key)!r}")
    if cfg.data.loader == "resident" and not batched_augmentation(cfg.augmentation, cfg.aug)[0]:
        raise ConfigError(f"data.loader=resident: augmentation {cfg.augmentation!r} has no batched form; use "
                          "data.loader=auto (it falls back to a DataLoader) or another preset")
    try:
        amp_dtype(cfg.train.amp, select_device(cfg.train.device))
    except (RuntimeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def _check_numbers(cfg: RunConfig) -> None:
    for key, ok, expected in _RANGES:
        value = get_field(cfg, key)
        if isinstance(value, float) and not math.isfinite(value) or not ok(value):
            raise ConfigError(f"{key} must be {expected}; got {value!r}")
    if cfg.train.sync_bn and cfg.train.gpus > 1 and select_device(cfg.train.device).type != "cuda":
        raise ConfigError("train.sync_bn needs CUDA: PyTorch's SyncBatchNorm works with GPU modules only")
    per_step = cfg.train.batch_size * cfg.train.gpus
    if cfg.train.global_batch and cfg.train.global_batch % per_step:
        raise ConfigError(f"train.global_batch ({cfg.train.global_batch}) must be a multiple of train.batch_size × "
                          f"train.gpus ({per_step}): the difference is made up by gradient accumulation")
    if cfg.data.val_source in split_parts(cfg.data.test_split):
        raise ConfigError(f"data.val_source and data.test_split are both {cfg.data.test_split}: a test split is "
                          "never used for model selection; validate on train_fraction or the other test split")


def _check_feature_model(cfg: RunConfig) -> List[str]:
    """A MediaPipe-feature run: the regularisation values it chooses from on validation."""
    values = cfg.model.kwargs.get("Cs")
    if not isinstance(values, list) or not values or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in values):
        raise ConfigError(f"model.kwargs.Cs of a {BLENDSHAPE_KIND} run must be a list of positive numbers; "
                          f"got {values!r}")
    return []


def _check_model(cfg: RunConfig) -> List[str]:
    if cfg.model.name == BLENDSHAPE_KIND:
        return _check_feature_model(cfg)
    # The weights of a pretrained model are fetched when training starts; the shape is all that matters here.
    kwargs = {k: v for k, v in cfg.model.kwargs.items() if k not in ("pretrained", "weights_path")}
    _check_counts(kwargs)
    size, n_classes = cfg.model.input_size, len(run_class_names(cfg))
    try:
        with torch.device("meta"), warnings.catch_warnings(), _ActivationTally() as activations:
            warnings.simplefilter("ignore", UserWarning)  # e.g. "zero-element tensors": the error below says more
            model = create_model(cfg.model.name, num_classes=n_classes, in_chans=cfg.model.in_chans, **kwargs)
            activations.watch(model)
            logits = model(torch.empty(2, cfg.model.in_chans, size, size))
        for name in cfg.transfer.unfreeze if cfg.transfer.freeze_epochs > 0 else ():
            if name != "all":
                model.get_submodule(name)
    except Exception as e:  # a bad kwarg, a shape that does not fit, a module that does not exist
        raise ConfigError(f"model {cfg.model.name} with kwargs {cfg.model.kwargs} cannot be built for "
                          f"{size}×{size} input: {type(e).__name__}: {e}") from None
    if tuple(logits.shape) != (2, n_classes):
        raise ConfigError(f"model {cfg.model.name} gives outputs of shape {tuple(logits.shape)}, not (batch, classes)")
    n = count_parameters(model)
    found = []
    if n > LARGE_MODEL_PARAMETERS:
        found.append(f"model {cfg.model.name} has {n / 1e6:.0f} M parameters ({n * 16 / 2**30:.1f} GiB with AdamW's "
                     f"state): training it will take very long on a CPU (the default CNN has 1.8 M)")
    return found + _cost_warnings(cfg, n, activations.per_face * cfg.train.batch_size)


def _check_counts(kwargs: dict) -> None:
    """Layer counts a model's kwargs may ask for (depth=99 builds, then never fits in memory or time)."""
    for key in ("depth", "convs_per_block", "blocks", "layers"):
        value = kwargs.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_LAYERS:
            raise ConfigError(f"model.kwargs.{key} must be in [0, {MAX_LAYERS}]; got {value}")
    widths = kwargs.get("widths")
    if isinstance(widths, list) and len(widths) > MAX_LAYERS:
        raise ConfigError(f"model.kwargs.widths lists {len(widths)} blocks; at most {MAX_LAYERS}")


class _ActivationTally:
    """Sums the outputs of every module in a meta forward pass: the activations a batch keeps for backward."""

    def __init__(self) -> None:
        self.numel, self.hooks = 0, []

    def watch(self, model: torch.nn.Module) -> None:
        for module in model.modules():
            if not list(module.children()):  # leaves: a container's output is its last leaf's
                self.hooks.append(module.register_forward_hook(self._count))

    def _count(self, module, inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            self.numel += output.numel()

    @property
    def per_face(self) -> int:
        """Bytes of float32 activations per face (the meta batch holds 2)."""
        return self.numel * 4 // 2

    def __enter__(self) -> "_ActivationTally":
        return self

    def __exit__(self, *exc: Any) -> None:
        for hook in self.hooks:
            hook.remove()


def _cost_warnings(cfg: RunConfig, parameters: int, activation_bytes: int) -> List[str]:
    """What this machine will find costly: more processes than cores, more memory than it has."""
    import os

    import psutil

    found, cores = [], os.cpu_count() or 1
    memory = psutil.virtual_memory().total
    if cfg.data.num_workers > cores:
        found.append(f"data.num_workers={cfg.data.num_workers} on a machine with {cores} cores: each worker is a "
                     "process with its own copy of the data; more than the cores only adds memory")
    if select_device(cfg.train.device).type == "cpu" and cfg.train.gpus > cores:
        found.append(f"train.gpus={cfg.train.gpus} processes on {cores} CPU cores: the local worker has fewer slots "
                     "and will refuse it (a Ray cluster with GPUs may take it)")
    need = activation_bytes * 2 + parameters * 16  # activations and their gradients; weights, grads, AdamW state
    if need > memory / 2:
        found.append(f"one training step needs about {need / 2**30:.1f} GiB (batch {cfg.train.batch_size} at "
                     f"{cfg.model.input_size}×{cfg.model.input_size}); this machine has {memory / 2**30:.0f} GiB")
    return found


@dataclass(frozen=True)
class CheckedConfig:
    """A run config that passed `check_config`, its data source resolved, with the warnings its costly
    settings raised. `create_run` and `submit` take only this, so one launch is checked exactly once."""

    config: RunConfig
    warnings: Tuple[str, ...] = ()


def check_config(cfg: RunConfig) -> CheckedConfig:
    """Raise ConfigError/DataError on a setting that cannot train; the checked config, with warnings for costly ones."""
    _check_choices(cfg)
    _check_numbers(cfg)
    try:  # names and tags are plain text (fer.core.text)
        cfg.name, cfg.tags = check_name(cfg.name), check_tags(cfg.tags)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    warnings = _check_model(cfg)
    config = copy.deepcopy(cfg)
    # Record where the data really came from, so `fer eval` finds it later from any directory.
    config.data.path = str(Path(cfg.data.path or default_data_path()).expanduser().resolve())
    RunData.from_config(config).check()
    check_teacher(config)
    check_ensemble(config)
    # ImageNet weights it cannot get stop the run here, before any run folder exists.
    check_pretrained(cfg.model.name, cfg.model.kwargs)
    warning = amp_warning(cfg.train.amp, select_device(cfg.train.device))
    return CheckedConfig(config, tuple(warnings + ([warning] if warning else [])))
