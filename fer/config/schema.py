"""The run config's shape: nested dataclasses with their defaults, the fixed choice lists, and a
`FieldSpec` per leaf field (dotted key, type, default, choices), which is what the CLI's `--set` and
the dashboard's generated form need. Reading text into a config lives in `fer.config.parse`.
"""
from __future__ import annotations

import json
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from fer.core.constants import BOTH_TESTS, FER2013_MEAN, FER2013_STD, SPLITS, TTA_MODES, Preprocessing

# The fixed choices of some fields (registry-backed ones, such as model.name, come from the registries).
TEST_SPLITS = (*SPLITS[1:], BOTH_TESTS)
VAL_SOURCES = ("train_fraction",) + SPLITS[1:]
SAMPLERS = ("none", "weighted")
AMP_MODES = ("auto", "bf16", "fp16", "off")
DEVICES = ("auto", "cpu", "cuda")
CROPS = ("none", "pad", "resized")
LOADERS = ("auto", "resident", "dataloader")
LABEL_SETS = ("fer2013", "ferplus")  # FER2013's own labels, or Microsoft's FER+ votes (fer.data.ferplus)
FERPLUS_MODES = ("majority", "soft")
FIXED_CHOICES: Dict[str, Sequence[str]] = {
    "data.labels": LABEL_SETS, "data.ferplus_mode": FERPLUS_MODES, "data.val_source": VAL_SOURCES, "data.test_split": TEST_SPLITS, "data.sampler": SAMPLERS,
    "train.amp": AMP_MODES, "train.device": DEVICES, "aug.crop": CROPS, "data.loader": LOADERS,
    "train.nonfinite": ("stop", "skip"), "distill.tta": TTA_MODES,
}


def setting(default: Any = MISSING, label: str = "", doc: str = "", factory: Any = MISSING) -> Any:
    """A config field with its words: `label` names it in forms, `doc` says what it does (forms, docs, help)."""
    metadata = {"label": label, "doc": doc}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class DataConfig:
    path: str = setting("", "FER2013 source", "fer2013.csv or the image-folder root; empty: FER_DATA, else data/")
    val_source: str = setting("train_fraction", "Validation from",
                              "train_fraction: a share of the training pool; or a test split (PublicTest/PrivateTest)")
    val_fraction: float = setting(0.1, "Validation share", "share of the training pool kept for validation (seeded)")
    test_split: str = setting("PublicTest", "Test split", "scored once, at the end, with the best checkpoint "
                                                           "(PublicTest+PrivateTest: both as one test set)")
    train_splits: List[str] = setting(label="Training pool", factory=lambda: ["Training"],
                                      doc="FER2013 splits pooled before validation is carved out "
                                          "(Study D: [Training, PublicTest])")
    val_stratify: bool = setting(True, "Stratified validation",
                                 "keep the class shares in both parts (off: a plain random split)")
    split_seed: int = setting(-1, "Split seed", "seeds the validation split and the samples; -1 = train.seed, so "
                                                "seeds also vary the split; fix it to train several seeds on one "
                                                "split (ensembles are chosen and calibrated on what no member saw)")
    limit: int = setting(0, "Images per split (0 = all)",
                         "cap training and validation at this many images each, stratified: a quick try")
    test_limit: int = setting(0, "Test images (0 = all)",
                              "cap the test split too; 0 keeps all of it, so test scores of runs stay comparable")
    sampler: str = setting("none", "Sampler", "weighted: draw faces with inverse class frequency (rare classes "
                                              "more often)")
    loader: str = setting("auto", "Training batches", "auto: the fast path (the split as one tensor on the training "
                                                      "device, batched augmentation) where the augmentation has a "
                                                      "batched form and the split fits, else a DataLoader; "
                                                      "resident or dataloader: always that one")
    num_workers: int = setting(0, "Data-loader workers", "processes preparing batches on the DataLoader path; 0 = in "
                                                        "the training process")
    mean: float = setting(FER2013_MEAN, "Pixel mean", "normalisation mean (0-1 scale; FER2013's by default)")
    std: float = setting(FER2013_STD, "Pixel std", "normalisation standard deviation (0-1 scale)")
    labels: str = setting("fer2013", "Labels", "fer2013, or ferplus: Microsoft's FER+ votes (8 classes; needs "
                                               "fer2013.csv and fer2013new.csv)")
    ferplus_path: str = setting("", "FER+ file", "fer2013new.csv; empty: beside the source's fer2013.csv")
    ferplus_mode: str = setting("majority", "FER+ targets", "majority: one label per face; soft: the votes' shares")


@dataclass
class AugmentConfig:
    """The `custom` augmentation preset's transforms (applied to 48×48 faces in this order)."""

    crop: str = setting("none", "Crop", "none, pad (random crop of the padded face) or resized (RandomResizedCrop)")
    crop_scale: List[float] = setting(label="Crop area", factory=lambda: [0.8, 1.0],
                                      doc="resized: range of the share of the area kept")
    crop_ratio: List[float] = setting(label="Crop aspect ratio", factory=lambda: [0.75, 1.3333],
                                      doc="resized: range of the aspect ratio")
    crop_padding: int = setting(4, "Crop padding", "pad: pixels of reflection padding")
    flip: bool = setting(False, "Horizontal flip", "mirror half of the faces")
    rotation: float = setting(0.0, "Rotation (degrees)", "a uniform angle within ± this (180: any angle)")
    translate: float = setting(0.0, "Shift", "shift by up to this share of the size")
    scale: List[float] = setting(label="Rescale", factory=lambda: [1.0, 1.0],
                                 doc="a zoom factor drawn from this range; [1, 1] = off")
    shear: float = setting(0.0, "Shear (degrees)", "a shear angle within ± this")
    half_turn: float = setting(0.0, "Upside-down turn", "probability of turning the face by 180°")
    jitter: float = setting(0.0, "Brightness/contrast jitter", "brightness and contrast ± this share")
    erasing: float = setting(0.0, "Random erasing", "probability of erasing one random rectangle")
    erasing_scale: List[float] = setting(label="Erased area", factory=lambda: [0.02, 0.1],
                                         doc="range of the erased rectangle's share of the area")
    probability: float = setting(1.0, "Share of faces augmented", "the transforms above touch this share of the "
                                                                  "faces; the rest pass unchanged")


@dataclass
class ModelConfig:
    name: str = setting("plain_cnn", "Model", "an architecture from the model registry")
    kwargs: Dict[str, Any] = setting(label="Model options", factory=dict,
                                     doc="the architecture's own arguments, e.g. {depth: 5} or {pretrained: true}")
    input_size: int = setting(48, "Input size (px)", "faces are resized to this square size before the model")
    in_chans: int = setting(1, "Input channels", "1: gray; 3: gray copied to three channels")


@dataclass
class OptimConfig:
    name: str = setting("adamw", "Optimizer", "an optimizer from the registry")
    lr: float = setting(1e-3, "Learning rate", "the base learning rate (OneCycle's peak unless the schedule's "
                                               "peak is set)")
    weight_decay: float = setting(1e-4, "Weight decay", "decoupled weight decay")
    momentum: float = setting(0.9, "Momentum", "SGD and Momentum-Kacı")
    nesterov: bool = setting(True, "Nesterov momentum", "SGD")
    betas: List[float] = setting(label="Adam betas", factory=lambda: [0.9, 0.999], doc="Adam and AdamW")
    alpha: float = setting(1.2, "Kacı exponent α", "KacıFANN and Momentum-Kacı (α = 1 is plain SGD)")
    eps: float = setting(1e-8, "Kacı ε", "KacıFANN: added to the loss and the reference weight")
    w_floor: float = setting(1e-3, "Kacı weight floor", "KacıFANN: the reference weight never goes below this")
    ratio_max: float = setting(1e3, "Kacı ratio cap", "KacıFANN: the loss/weight ratio is clipped to "
                                                      "[1/cap, cap]")
    update_clip: float = setting(1.0, "Kacı update clip", "KacıFANN: elementwise clip of the update")
    backbone_lr: float = setting(0.0, "Backbone learning rate", "transfer learning: the pretrained backbone's "
                                                                "rate; 0 = the learning rate")


@dataclass
class SchedConfig:
    name: str = setting("onecycle", "Schedule", "how the learning rate changes over the run")
    max_lr: float = setting(0.0, "OneCycle peak", "OneCycle's peak learning rate; 0 = the learning rate")
    pct_start: float = setting(0.3, "OneCycle warm-up share", "share of the run spent rising to the peak")
    step_size: int = setting(10, "Step every (epochs)", "step: epochs between decays")
    gamma: float = setting(0.1, "Decay factor", "step and multistep: the rate is multiplied by this")
    milestones: List[int] = setting(label="Milestones (epochs)", factory=lambda: [20, 40],
                                    doc="multistep: epochs at which the rate decays")
    factor: float = setting(0.5, "Plateau factor", "plateau: the rate is multiplied by this")
    patience: int = setting(3, "Plateau patience", "plateau: epochs without a better validation accuracy")
    warmup_epochs: int = setting(1, "Warm-up epochs", "warmup_cosine: linear warm-up length")
    min_lr: float = setting(0.0, "Minimum learning rate", "cosine and warmup_cosine: the floor")


@dataclass
class LossConfig:
    label_smoothing: float = setting(0.0, "Label smoothing", "share of each target spread over the other classes")
    class_weights: bool = setting(False, "Class-weighted loss", "inverse-frequency weights in the cross-entropy "
                                                                "(rare classes count more)")


@dataclass
class DistillConfig:
    """Knowledge distillation: the training targets mix a teacher's probabilities with the labels."""

    teacher: List[str] = setting(label="Teacher models", factory=list,
                                 doc="runs (default = the shipped model) whose averaged probabilities the student "
                                     "learns from; several = an ensemble; empty = no distillation")
    weight: float = setting(0.9, "Teacher share", "the targets' share that is the teacher's probabilities; the rest "
                                                  "is the label")
    temperature: float = setting(1.0, "Teacher temperature", "more than 1 softens the teacher's probabilities, "
                                                             "so the student also learns its second choices")
    tta: str = setting("flip", "Teacher TTA", "test-time augmentation the teacher predicts with")
    consistent: bool = setting(False, "Teach every augmented batch",
                               "the teacher predicts each augmented batch the student sees (consistent teaching) "
                               "instead of each face once before training; a teacher forward pass per batch")


@dataclass
class TransferConfig:
    freeze_epochs: int = setting(0, "Head-only epochs", "train only the model's head for this many epochs, then "
                                                        "unfreeze; 0 = fine-tune everything")
    unfreeze: List[str] = setting(label="Unfrozen after that", factory=lambda: ["layer4"],
                                  doc="modules trained after the head-only epochs; [all] = everything")


@dataclass
class TrainConfig:
    epochs: int = setting(30, "Epochs", "passes over the training split")
    batch_size: int = setting(64, "Batch size", "faces per step in each process")
    gpus: int = setting(1, "Devices at once", "GPUs (CPU processes without a GPU) the run trains on at once: more "
                                              "than 1 is one DistributedDataParallel job")
    sync_bn: bool = setting(False, "Synchronised batch norm", "with several GPUs: batch-norm statistics over the "
                                                              "global batch")
    global_batch: int = setting(0, "Faces per optimizer step", "0 = batch size × devices; more = gradient "
                                                               "accumulation")
    device: str = setting("auto", "Device", "auto: CUDA when present, else the CPU; cuda:1 picks a GPU")
    amp: str = setting("auto", "Mixed precision", "auto: bf16 (or fp16) on CUDA, bf16 on CPUs that run it natively, "
                                                  "else fp32; or bf16 / fp16 / off")
    grad_clip: float = setting(0.0, "Gradient clipping", "largest gradient norm; 0 = off")
    early_stop_patience: int = setting(0, "Early stopping patience", "epochs without a better validation "
                                                                     "accuracy before stopping; 0 = off")
    nonfinite: str = setting("stop", "On a NaN loss", "stop: fail the run saying where; skip: drop that batch's "
                                                      "step and count it")
    channels_last: bool = setting(True, "Channels-last memory", "a faster memory layout for convolutions")
    compile: bool = setting(False, "Compile the model", "torch.compile the training step's forward pass: the first "
                                                       "epoch pays the compilation; on a 2-core CPU it did not "
                                                       "pay (docs/benchmarks.md)")
    seed: int = setting(0, "Seed", "seeds the split, the initial weights and the data order")
    eval_batch_size: int = setting(256, "Evaluation batch size", "faces per batch when validating and testing")


@dataclass
class TrackingConfig:
    """Experiment trackers a run also reports to; the run folder stays the record (see fer.training.tracking)."""

    wandb: bool = setting(False, "Weights & Biases", "pip install 'fer-studio[wandb]'; WANDB_MODE=offline works")
    wandb_project: str = setting("fer-studio", "W&B project", "the W&B project runs go to")
    mlflow: bool = setting(False, "MLflow", "pip install 'fer-studio[mlflow]'")
    mlflow_uri: str = setting("", "MLflow server", "empty: MLFLOW_TRACKING_URI, else a file store in the runs "
                                                   "folder's mlruns/")
    mlflow_experiment: str = setting("fer-studio", "MLflow experiment", "the MLflow experiment runs go to")
    tensorboard: bool = setting(False, "TensorBoard", "event files in the run folder "
                                                      "(pip install 'fer-studio[tensorboard]')")


@dataclass
class RunConfig:
    name: str = setting("run", "Run name", "shown on the leaderboard and job cards; the run id adds the time")
    tags: List[str] = setting(label="Tags", factory=list, doc="labels to filter runs by (suite:…, seed:…)")
    runs_dir: str = setting("", "Runs folder", "empty: FER_RUNS_DIR, else checkpoints/")
    augmentation: str = setting("standard", "Augmentation", "a preset; custom builds it from the aug settings")
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
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
    label: str = ""  # what a form calls it ("Learning rate")
    doc: str = ""  # what it does, in a line

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
                out.append(FieldSpec(key, hint, getattr(defaults, f.name), tuple(choices.get(key, ())),
                                     f.metadata.get("label") or key, f.metadata.get("doc", "")))
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


