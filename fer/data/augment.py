"""Augmentation presets: callables on uint8 1×48×48 tensors, applied before `to_model_input`.

The heavier presets follow the FER2013 studies (Khaireddin & Chen 2021; Minaee et al. 2019):
random crops/rescale, horizontal flip, ±10–15° rotation, shifts, shear, brightness/contrast
and random erasing. The `custom` preset is built from the `aug.*` settings, so any study's exact
list of transforms can be written in a config.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import torch
from torchvision.transforms import v2

from fer.config import AugmentConfig
from fer.core.registry import Registry

Augment = Callable[[torch.Tensor], torch.Tensor]
AUGMENTATIONS: Registry[Callable[[int, AugmentConfig], Optional[Augment]]] = Registry("augmentation preset")


@AUGMENTATIONS.register("none")
def no_augmentation(size: int = 48, params: Optional[AugmentConfig] = None) -> Optional[Augment]:
    """Identity: the face as stored."""
    return None


# The presets as `aug.*` settings: one table feeds the per-face transforms below and their batched
# form (`fer.data.batched`), so both paths of a run augment alike.
PRESET_SETTINGS: Dict[str, AugmentConfig] = {
    "light": AugmentConfig(crop="pad", crop_padding=4, flip=True),
    "standard": AugmentConfig(crop="resized", crop_scale=[0.8, 1.0], crop_ratio=[0.9, 1.1], flip=True, rotation=10.0,
                              jitter=0.2),
    "heavy": AugmentConfig(flip=True, rotation=15.0, translate=0.2, scale=[0.8, 1.2], shear=10.0, jitter=0.3,
                           erasing=0.5, erasing_scale=[0.02, 0.15]),
}


@AUGMENTATIONS.register("light")
def light(size: int = 48, params: Optional[AugmentConfig] = None) -> Augment:
    """Flip and a padded random crop (±4 px shift)."""
    return custom(size, PRESET_SETTINGS["light"])


@AUGMENTATIONS.register("standard")
def standard(size: int = 48, params: Optional[AugmentConfig] = None) -> Augment:
    """Random resized crop, flip, ±10° rotation, brightness/contrast jitter."""
    return custom(size, PRESET_SETTINGS["standard"])


@AUGMENTATIONS.register("heavy")
def heavy(size: int = 48, params: Optional[AugmentConfig] = None) -> Augment:
    """Khaireddin & Chen style: ±20% rescale and shift, ±15° rotation, shear, jitter, erasing."""
    return custom(size, PRESET_SETTINGS["heavy"])


@AUGMENTATIONS.register("custom")
def custom(size: int = 48, params: Optional[AugmentConfig] = None) -> Optional[Augment]:
    """Built from the aug.* settings: crop, flip, rotation/shift/rescale/shear, half turn, jitter, erasing, in order."""
    p = params or AugmentConfig()
    steps: List[Callable] = []
    if p.crop == "resized":
        steps.append(v2.RandomResizedCrop(size, scale=tuple(p.crop_scale), ratio=tuple(p.crop_ratio), antialias=True))
    elif p.crop == "pad":
        steps.append(v2.RandomCrop(size, padding=p.crop_padding, padding_mode="reflect"))
    if p.flip:
        steps.append(v2.RandomHorizontalFlip())
    rescale = tuple(p.scale) if tuple(p.scale) != (1.0, 1.0) else None
    if p.rotation > 0 or p.translate > 0 or rescale or p.shear > 0:
        steps.append(v2.RandomAffine(degrees=p.rotation, translate=(p.translate, p.translate) if p.translate else None,
                                     scale=rescale, shear=p.shear or None))
    if p.half_turn > 0:
        steps.append(v2.RandomApply([v2.RandomRotation((180.0, 180.0))], p=p.half_turn))
    if p.jitter > 0:
        steps.append(v2.ColorJitter(brightness=p.jitter, contrast=p.jitter))
    if p.erasing > 0:
        steps.append(v2.RandomErasing(p=p.erasing, scale=tuple(p.erasing_scale), value=0))
    if steps and p.probability < 1:  # "transforms back, less often" (Study D): the whole list, per face
        return v2.RandomApply(steps, p=p.probability)
    return v2.Compose(steps) if steps else None


def build_augmentation(name: str, size: int = 48, params: Optional[AugmentConfig] = None) -> Optional[Augment]:
    """The preset `name` as a callable (None for 'none'); `params` feed the 'custom' preset."""
    return AUGMENTATIONS.get(name)(size, params)
