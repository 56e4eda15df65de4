"""The run config's shape: nested dataclasses with their defaults, the fixed choice lists, and a
`FieldSpec` per leaf field (dotted key, type, default, choices), which is what the CLI's `--set` and
the dashboard's generated form need. Reading text into a config lives in `fer.config.parse`.
"""
from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from fer.core.constants import FER2013_MEAN, FER2013_STD, Preprocessing, SPLITS

# The fixed choices of some fields (registry-backed ones, such as model.name, come from the registries).
TEST_SPLITS = SPLITS[1:]
VAL_SOURCES = ("train_fraction",) + TEST_SPLITS
SAMPLERS = ("none", "weighted")
AMP_MODES = ("auto", "bf16", "fp16", "off")
DEVICES = ("auto", "cpu", "cuda")
CROPS = ("none", "pad", "resized")
LABEL_SETS = ("fer2013", "ferplus")  # FER2013's own labels, or Microsoft's FER+ votes (fer.data.ferplus)
FERPLUS_MODES = ("majority", "soft")
FIXED_CHOICES: Dict[str, Sequence[str]] = {
    "data.labels": LABEL_SETS, "data.ferplus_mode": FERPLUS_MODES, "data.val_source": VAL_SOURCES, "data.test_split": TEST_SPLITS, "data.sampler": SAMPLERS,
    "train.amp": AMP_MODES, "train.device": DEVICES, "aug.crop": CROPS, "train.nonfinite": ("stop", "skip"),
}


@dataclass
class DataConfig:
    path: str = ""  # fer2013.csv or image-folder root; empty: FER_DATA, else data/
    val_source: str = "train_fraction"  # or PublicTest / PrivateTest
    val_fraction: float = 0.1
    test_split: str = "PublicTest"
    # FER2013 splits pooled before validation is carved out (Study D trains on Training + PublicTest).
    train_splits: List[str] = field(default_factory=lambda: ["Training"])
    val_stratify: bool = True  # train_fraction: keep class shares in both parts (false: a plain random split)
    limit: int = 0  # cap train and val at this many images each (stratified); 0 = all
    test_limit: int = 0  # cap the test split too; 0 = all of it, so test scores of all runs stay comparable
    sampler: str = "none"  # "weighted": WeightedRandomSampler with inverse class frequency
    num_workers: int = 0
    mean: float = FER2013_MEAN
    std: float = FER2013_STD
    labels: str = "fer2013"  # or "ferplus": Microsoft's FER+ votes (8 classes), needs fer2013.csv + fer2013new.csv
    ferplus_path: str = ""  # fer2013new.csv; empty: beside data.path's fer2013.csv
    ferplus_mode: str = "majority"  # or "soft": probability targets from the votes


@dataclass
class AugmentConfig:
    """The `custom` augmentation preset's transforms (applied to 48×48 faces in this order)."""

    crop: str = "none"  # none, pad (random crop of the padded face) or resized (RandomResizedCrop)
    crop_scale: List[float] = field(default_factory=lambda: [0.8, 1.0])  # resized: share of the area kept
    crop_ratio: List[float] = field(default_factory=lambda: [0.75, 1.3333])  # resized: aspect ratio range
    crop_padding: int = 4  # pad: pixels of reflection padding
    flip: bool = False  # horizontal flip with probability 0.5
    rotation: float = 0.0  # uniform angle in ±rotation degrees (180: any angle)
    translate: float = 0.0  # shift by up to this share of the size
    jitter: float = 0.0  # brightness and contrast ± this share
    erasing: float = 0.0  # probability of erasing one random rectangle
    erasing_scale: List[float] = field(default_factory=lambda: [0.02, 0.1])  # its share of the area


@dataclass
class ModelConfig:
    name: str = "plain_cnn"
    kwargs: Dict[str, Any] = field(default_factory=dict)
    input_size: int = 48
    in_chans: int = 1


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # SGD
    nesterov: bool = True  # SGD
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam/AdamW
    alpha: float = 1.2  # KacıFANN / Momentum-Kacı exponent (α = 1 is plain SGD)
    eps: float = 1e-8  # KacıFANN: added to loss and reference weight
    w_floor: float = 1e-3  # KacıFANN: lower bound of the reference weight
    ratio_max: float = 1e3  # KacıFANN: the loss/weight ratio is clipped to [1/ratio_max, ratio_max]
    update_clip: float = 1.0  # KacıFANN: elementwise clip of the update
    backbone_lr: float = 0.0  # transfer learning: learning rate of the pretrained backbone; 0 = lr


@dataclass
class SchedConfig:
    name: str = "onecycle"
    max_lr: float = 0.0  # OneCycle peak; 0 means optim.lr
    pct_start: float = 0.3  # OneCycle warm-up share
    step_size: int = 10  # step
    gamma: float = 0.1  # step / multistep
    milestones: List[int] = field(default_factory=lambda: [20, 40])  # multistep
    factor: float = 0.5  # plateau
    patience: int = 3  # plateau
    warmup_epochs: int = 1  # warmup_cosine
    min_lr: float = 0.0  # cosine / warmup_cosine


@dataclass
class LossConfig:
    label_smoothing: float = 0.0
    class_weights: bool = False  # inverse-frequency weights in the cross-entropy


@dataclass
class TransferConfig:
    freeze_epochs: int = 0  # > 0: train only the model's head for this many epochs, then unfreeze
    unfreeze: List[str] = field(default_factory=lambda: ["layer4"])  # modules trained after that; ["all"] = all


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64  # per process: with gpus > 1 each process takes this many faces per step
    # Devices (GPUs; processes on a CPU-only machine) the run trains on at once: more than 1 is one
    # DistributedDataParallel job launched through torchrun, one process per device.
    gpus: int = 1
    sync_bn: bool = False  # with gpus > 1: batch-norm statistics over the global batch (SyncBatchNorm)
    global_batch: int = 0  # faces per optimizer step; 0 = batch_size × gpus, more = gradient accumulation
    device: str = "auto"  # auto: CUDA when present, else CPU
    amp: str = "auto"  # auto: bf16 (or fp16 + GradScaler) on CUDA, off on CPU; or bf16 / fp16 / off
    grad_clip: float = 0.0  # max gradient norm; 0 disables
    early_stop_patience: int = 0  # epochs without a better val accuracy; 0 disables
    # A batch whose loss is NaN or infinite: "stop" fails the run saying where; "skip" drops that
    # batch's step and counts it (metrics' nonfinite_batches); an epoch of nothing but such batches stops.
    nonfinite: str = "stop"
    channels_last: bool = True
    seed: int = 0
    eval_batch_size: int = 256


@dataclass
class TrackingConfig:
    """Experiment trackers a run also reports to; the run folder stays the record (see fer.training.tracking)."""

    wandb: bool = False  # Weights & Biases (pip install 'fer-studio[wandb]'; WANDB_MODE=offline works)
    wandb_project: str = "fer-studio"
    mlflow: bool = False  # MLflow (pip install 'fer-studio[mlflow]')
    mlflow_uri: str = ""  # empty: MLFLOW_TRACKING_URI, else a file store in the runs folder's mlruns/
    mlflow_experiment: str = "fer-studio"
    tensorboard: bool = False  # event files in the run folder's tensorboard/ (pip install 'fer-studio[tensorboard]')


@dataclass
class RunConfig:
    name: str = "run"
    tags: List[str] = field(default_factory=list)
    runs_dir: str = ""  # empty: FER_RUNS_DIR, else checkpoints/
    augmentation: str = "standard"  # a preset; "custom" builds it from aug.*
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def preprocessing(self) -> Preprocessing:
        """The preprocessing spec this run trains with (stored in its checkpoints)."""
        return Preprocessing(self.model.input_size, self.model.in_chans, self.data.mean, self.data.std)

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict (JSON-friendly)."""
        return asdict(self)

    def to_json(self) -> str:
        """Indented JSON, as stored in `config.json`."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


class ConfigError(ValueError):
    """A config file or override that does not fit the RunConfig."""


@dataclass(frozen=True)
class FieldSpec:
    """One leaf field of the RunConfig: what a generated settings form or a `--set` parser needs."""

    key: str  # dotted, e.g. "optim.lr"
    type: Any
    default: Any
    choices: Tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """How a form edits it: choice, bool, int, float, str, or yaml (lists and mappings as text)."""
        if self.choices:
            return "choice"
        return self.type.__name__ if self.type in (bool, int, float, str) else "yaml"

    def text(self, value: Any) -> str:
        """`value` as the text a form shows for a yaml field (JSON is valid YAML)."""
        return json.dumps(value)


def field_specs(choices: Mapping[str, Sequence[str]] = FIXED_CHOICES) -> List[FieldSpec]:
    """Every leaf field of RunConfig, in declaration order, with the given choice lists attached."""
    def walk(cls: type, prefix: str) -> List[FieldSpec]:
        out: List[FieldSpec] = []
        hints = typing.get_type_hints(cls)
        defaults = cls()
        for f in fields(cls):
            key, hint = prefix + f.name, hints[f.name]
            if is_dataclass(hint):
                out += walk(hint, key + ".")
            else:
                out.append(FieldSpec(key, hint, getattr(defaults, f.name), tuple(choices.get(key, ()))))
        return out
    return walk(RunConfig, "")


def get_field(cfg: RunConfig, key: str) -> Any:
    """The value of dotted `key` in `cfg` (cfg.optim.lr for "optim.lr")."""
    value: Any = cfg
    for part in key.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def field_type(key: str) -> Any:
    """The declared type of dotted `key`; `Any` below a mapping field (model.kwargs.depth)."""
    cls: Any = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls) if is_dataclass(cls) else {}
        if part not in hints:
            valid = sorted(hints) if hints else []
            raise ConfigError(f"unknown config key {key[:80]!r}; valid under {'.'.join(parts[:i]) or 'the top level'}: "
                              f"{valid}")
        cls = hints[part]
        if typing.get_origin(cls) in (dict, Dict):
            return cls if i == len(parts) - 1 else Any
    return cls


