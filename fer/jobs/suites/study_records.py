"""What each of the five studies did and reported, in its own words and on its own splits.

One `Study` per study: what it did, its split protocol, the readings chosen where its text is silent,
its suites, its best model (the recipe) and its own results table (`Reported`, one row per figure it
gives). The suites that rerun them are in `fer.jobs.suites.studies`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from fer.core.registry import Registry


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
    train_accuracy: Optional[float] = None  # the study's train accuracy for it, when given


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
HELD_OUT = "held-out 30% of Training"  # Study C's own test set, which is our validation split

# --- The studies -----------------------------------------------------------------------------------------------

STUDIES.register("a")(Study(
    "a", "ResNet-34 transfer learning and optimizers",
    "ImageNet ResNet-34 (gray copied to 3 channels, 224×224, head = dropout 0.2 + linear): head alone for a few "
    "epochs, then layer4 with a lower backbone learning rate; weighted sampler, label smoothing 0.1, AMP and "
    "clipping; AdamW, SGD, KacıFANN and Momentum-Kacı with OneCycle.",
    "The study names no split; here Training (validation carved from it) · PublicTest",
    "'A few' head-only epochs: a tenth of the run, 1 to 5. 'Light' RandomErasing: p 0.25, 2–10% of the area. "
    "Gray to 3 channels (R = G = B) as its slides and summary say; its code excerpt swaps conv1 for a new "
    "1-channel conv instead, which would discard conv1's ImageNet weights, and is not followed. "
    "Each optimizer's backbone rate is a tenth of its head rate. Normalisation (x − 0.5) / 0.5 as its code; weight "
    "decay for AdamW only (PyTorch's 0.01), none for SGD and the Kacı optimizers, whose updates it writes out. "
    "It does not say where its 68.8% was measured; it is compared with our PublicTest accuracy.",
    ("study-a-optimizers",), ("study-a-optimizers", "adamw"), 100,
    (Reported("study-a-optimizers", "adamw", "AdamW + OneCycle (epoch 100)", 0.688, None, "a split it does not name"),
     Reported("study-a-optimizers", "sgd", "SGD"), Reported("study-a-optimizers", "kacifann", "KacıFANN"),
     Reported("study-a-optimizers", "momentum-kaci", "Momentum-Kacı"))))

STUDIES.register("b")(Study(
    "b", "A systematic CNN ladder",
    "Three experiments on a plain CNN, each its own W&B project: depth (1/3/5/7 conv layers, nothing else; 5 "
    "best at 55.6%, 7 stuck at 24.5%), regularization on 5 layers (BN best at 62.4%, augmentation alone worst "
    "at 32.4%) and architecture on the BN net (skip connections best at 62.9%); every figure a validation "
    "accuracy, runs stopped early after 20–29 epochs.",
    "Training (validation carved from it) · a test split the study does not name (PrivateTest here)",
    "Widths 32→512 doubling, one conv per layer, pooled after the first four, the last map flattened as it is "
    "into one FC layer of 2048: the reading that gives the study's ~11.3 M parameters for the combined net "
    "(11.24 M) and ~45 K for attention (squeeze-excitation, reduction 16: 44,832). Adam 1e-3, no schedule; "
    "dropout 0.25 spatial and 0.5 before the FC layer; augmentation = pad-crop, flip, ±10°; early stopping "
    "after 5 epochs without a better validation accuracy, 30 at most. Train accuracies the study gives only as "
    "a train–val gap are that gap added to the validation figure.",
    ("study-b-depth", "study-b-regularization", "study-b-architecture"), ("study-b-architecture", "skip"), 30,
    (Reported("study-b-depth", "1-layers", "1 conv layer", 0.516, None, "validation", train_accuracy=0.867),
     Reported("study-b-depth", "3-layers", "3 conv layers", 0.536, None, "validation", train_accuracy=0.978),
     Reported("study-b-depth", "5-layers", "5 conv layers", 0.556, None, "validation", train_accuracy=0.925),
     Reported("study-b-depth", "7-layers", "7 conv layers", 0.245, None, "validation"),
     Reported("study-b-regularization", "none", "5 layers, none (experiment 1's)", 0.556, None, "validation",
              train_accuracy=0.925),
     Reported("study-b-regularization", "batchnorm", "5 layers + BN (best, 20 epochs)", 0.624, None, "validation",
              train_accuracy=0.978),
     Reported("study-b-regularization", "dropout", "5 layers + dropout (26 epochs)", 0.593, None, "validation",
              train_accuracy=0.922),
     Reported("study-b-regularization", "bn+dropout", "5 layers + BN + dropout", 0.614, None, "validation",
              train_accuracy=0.881),
     Reported("study-b-regularization", "augmentation", "augmentation only (worst)", 0.324, None, "validation",
              train_accuracy=0.515),
     Reported("study-b-architecture", "bn-baseline", "BN baseline (experiment 2's)", 0.624, None, "validation",
              train_accuracy=0.978),
     Reported("study-b-architecture", "attention", "BN + attention (params: extra)", 0.623, 45_000, "validation",
              extra_over="bn-baseline", train_accuracy=0.970),
     Reported("study-b-architecture", "skip", "5-layer BN + skip (best, 29 epochs)", 0.629, None, "validation",
              train_accuracy=0.983),
     Reported("study-b-architecture", "skip+attention", "BN + attention + skip", 0.619, 11_290_000, "validation",
              train_accuracy=0.976))))

STUDIES.register("c")(Study(
    "c", "Deep-Emotion and schedulers",
    "Deep-Emotion (Minaee et al. 2019: an attentional CNN with a spatial transformer, 66,877 parameters; the "
    "paper reports 70.02% on FER2013, a reference, not this study's result) trained on 70% of Training and "
    "tested on the other 30%; learning rate 0.1 stuck at ~24%, 0.001 learned; StepLR (10, 0.1), MultiStep "
    "[10, 20, 50] and Cosine compared (Plateau tried and dropped); cosine best at 59% after 100 epochs, StepLR "
    "54% at 50 and then no longer learning; each setting run 5 times.",
    "Training (70% train / 30% the study's test, here validation) · PublicTest untouched",
    "The 30% the study tested on is our validation split (random, seeded), so its numbers compare with our "
    "validation accuracy and PublicTest stays a test no choice was made on. Where the text is silent: Adam and "
    "batch 128 (the Deep-Emotion code the study took its model from), no augmentation, Plateau ×0.1 after 3 "
    "epochs, lr 0.1 without a schedule. The study names 6 classes and 28,708 images; FER2013's Training has 7 "
    "and 28,709, so all 7 are kept. Its comparison ran each setting 5 × 200 epochs (`--repeats 5 --epochs 200`); "
    "the suite's default is the 100 epochs its best figure was read at.",
    ("study-c-schedulers",), ("study-c-schedulers", "cosine"), 100,
    (Reported("study-c-schedulers", "steplr", "StepLR 10/0.1 (epoch 50)", 0.54, 66_877, HELD_OUT),
     Reported("study-c-schedulers", "multistep", "MultiStep [10, 20, 50]"),
     Reported("study-c-schedulers", "cosine", "Cosine (epoch 100, the best)", 0.59, None, HELD_OUT),
     Reported("study-c-schedulers", "plateau", "Plateau (tried, dropped)"),
     Reported("study-c-schedulers", "lr-0.1", "learning rate 0.1", 0.24, None, HELD_OUT))))

STUDIES.register("d")(Study(
    "d", "Kaggle basic → complex CNN",
    "Training + PublicTest merged, a random 75/25 split, PrivateTest as the test; faces tilted by up to 10° and "
    "turned by 180° at random; basic CNN (Adam 0.005, Kaiming init) → + BN (0.01) → + dropout (0.25 / 0.5) → "
    "complex CNN (61%); then, on the complex CNN only, class-weighted loss, gradient scaling and a scheduler "
    "with the transforms taken out (it overfitted), the transforms back less often (the 62.7473% it kept), and "
    "a last try with a stronger decay, patience 1 and more epochs that Colab stopped at epoch 23, no better.",
    "Training + PublicTest (75% train / 25% validation, random) · PrivateTest",
    "Basic: 3 blocks of two convs (32-64-128), FC 256; complex: 4 blocks (64→512), FC 512-256 (the study copied "
    "it from an assignment it does not list). '180° at random': half the faces turned upside down. The final "
    "stage's scheduler: plateau halving after 3 epochs (patience unstated), its gradient scaling: clipping at "
    "norm 1.0; 'less often': a quarter of the faces; the last try's 'stronger than halving': ×0.1, its 'more "
    "epochs': 40. 'Kept the previous model's 62.7473%' is read as the model before the last try, the final one. "
    "Learning rates: 0.005 for the basic net, 0.01 from BN on (the study raised it for BN and did not change it "
    "again). 30 epochs.",
    ("study-d-ladder",), ("study-d-ladder", "complex-final"), 30,
    (Reported("study-d-ladder", "basic", "basic CNN"), Reported("study-d-ladder", "bn", "+ BN"),
     Reported("study-d-ladder", "bn+dropout", "+ BN + dropout"),
     Reported("study-d-ladder", "complex", "complex CNN", 0.61, None, "PrivateTest"),
     Reported("study-d-ladder", "complex-fixes", "+ weighted loss, clipping, scheduler, no transforms"),
     Reported("study-d-ladder", "complex-final", "+ the transforms back, less often (kept)", 0.627473, None,
              "PrivateTest"),
     Reported("study-d-ladder", "complex-last-try", "+ ×0.1 decay, patience 1 (stopped at epoch 23)"))))

STUDIES.register("e")(Study(
    "e", "W&B baseline → deeper → CBAM",
    "A stratified 80/20 split of Training (22,967 / 5,742); Baseline V1 (two 5×5 convs, 1,232,775 parameters) "
    "and V2 (BN, spatial dropout, FC 512→256→128), Deeper CNN V1 (4 conv blocks with BN, global average pool) "
    "and V2 (leaner, dropout 0.7, tighter early stopping), V3 with augmentation, and a CBAM CNN (AdamW, CBAM "
    "after each pool); runs tagged model_type, dataset_version and experiment_type in the W&B project "
    "facial-expression-recognition.",
    "Training (80% train / 20% validation, stratified) · its 7,178-face test set is PublicTest + PrivateTest",
    "Where the text is silent. Baseline V1: early stopping patience 5 (V2's), no schedule. Baseline V2: the V1 "
    "convs with BN after each, Dropout2d 0.2 after each pool, adaptive average pool to 6×6, dropout 0.6 before "
    "each FC layer, plateau patience 3, 20 epochs. Deeper V1: one 3×3 conv per block and FC 512→256 with BN (4 conv "
    "+ 3 FC = its 7 layers), plateau patience 5 and early stopping 10 (V2 'reduces sooner' to 3 and 7). Deeper "
    "V2: 'FC 512 → 256' read as one FC layer of 256; Dropout2d 0.1 in the first two blocks. V3: Deeper V2 with "
    "shear ±10° and jitter 0.2. CBAM: channel reduction 16, a 1×1 spatial conv (as written; 7×7 in the CBAM "
    "paper, `model.kwargs.spatial_kernel=7`), rotation ±15°, plateau patience 3, early stopping 7. Plateau "
    "factor 0.5 everywhere. V3's 'Normalize' (values not given): FER2013 Training's mean and std, on every rung. "
    "'Deeper V2 results' repeat V1's numbers word for word, so they are not attached to V2.",
    ("study-e-ladder",), ("study-e-ladder", "cbam"), 50,
    (Reported("study-e-ladder", "baseline-v1", "Baseline V1 (simple CNN)", 0.60, 1_232_775, "validation",
              train_accuracy=0.85),
     Reported("study-e-ladder", "baseline-v2", "Baseline V2"),
     Reported("study-e-ladder", "deeper-v1", "Deeper CNN V1 (stopped at epoch 24)", 0.5772, None, "validation",
              train_accuracy=0.9393),
     Reported("study-e-ladder", "deeper-v2", "Deeper CNN V2"),
     Reported("study-e-ladder", "deeper-v3", "V3 (augmentation)"),
     Reported("study-e-ladder", "cbam", "CBAM CNN"))))
