"""Presets: the shipped configs a run can start from, by name (the Train page's "Start from", `--config NAME`).

The YAML files live in the package (`fer/configs/`, also `configs/` in a checkout), so a pip install
has them too. Each preset is one file; titles say what a newcomer gets.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from fer.config import RunConfig, load_config
from fer.core.registry import Registry

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
PRESETS: Registry[Path] = Registry("preset")
for _name, _file, _title in (
        ("quick", "quick.yaml", "A quick try: a 5,000-face sample for 5 epochs (about 2 minutes on a laptop CPU)"),
        ("default-model", "default_model.yaml", "The shipped model's recipe: a wider plain CNN, 55 epochs"),
        ("gpu", "gpu.yaml", "A GPU recipe: ResNet-18 for 48×48 faces, 100 epochs, batch 128"),
        ("plain-cnn", "plain_cnn_cpu.yaml", "The plain CNN's default recipe, 30 epochs"),
        ("student", "student_cpu.yaml", "A fast student: the plain CNN learning from the shipped model's "
                                        "probabilities, 55 epochs"),
        ("study-a", "studies/a_resnet34_224.yaml", "Study A's best: ImageNet ResNet-34 at 224×224, AdamW + OneCycle"),
        ("study-b", "studies/b_cnn5_bn_skip.yaml", "Study B's best: a 5-layer CNN with BatchNorm and skips"),
        ("study-c", "studies/c_deep_emotion_cosine.yaml", "Study C: Deep-Emotion with cosine annealing"),
        ("study-d", "studies/d_complex_cnn.yaml", "Study D's complex CNN"),
        ("study-e", "studies/e_cbam_cnn.yaml", "Study E's CBAM CNN")):
    PRESETS.register(_name, title=_title)(CONFIGS_DIR / _file)


def preset_config(name: str, overrides: Optional[List[str]] = None) -> RunConfig:
    """The preset's config, with `key=value` overrides on top."""
    return load_config(PRESETS.get(name), list(overrides or []))


def config_path(value: str) -> Path:
    """`--config` as given: a file, or the name of a preset."""
    path = Path(value)
    if path.is_file() or value not in PRESETS:
        return path
    return PRESETS.get(value)
