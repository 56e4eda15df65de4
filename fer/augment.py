"""Augmentation presets: callables on uint8 1×48×48 tensors, applied before `to_model_input`.

The heavier presets follow the FER2013 studies (Khaireddin & Chen 2021; Minaee et al. 2019):
random crops/rescale, horizontal flip, ±10–15° rotation, shifts, shear, brightness/contrast
and random erasing.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torchvision.transforms import v2

from fer.registry import Registry

Augment = Callable[[torch.Tensor], torch.Tensor]
AUGMENTATIONS: Registry[Callable[[int], Optional[Augment]]] = Registry("augmentation preset")


@AUGMENTATIONS.register("none")
def no_augmentation(size: int = 48) -> Optional[Augment]:
    """Identity: the face as stored."""
    return None


@AUGMENTATIONS.register("light")
def light(size: int = 48) -> Augment:
    """Flip and a padded random crop (±4 px shift)."""
    return v2.Compose([v2.RandomHorizontalFlip(), v2.RandomCrop(size, padding=4, padding_mode="reflect")])


@AUGMENTATIONS.register("standard")
def standard(size: int = 48) -> Augment:
    """Random resized crop, flip, ±10° rotation, brightness/contrast jitter."""
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomRotation(10),
        v2.ColorJitter(brightness=0.2, contrast=0.2),
    ])


@AUGMENTATIONS.register("heavy")
def heavy(size: int = 48) -> Augment:
    """Khaireddin & Chen style: ±20% rescale and shift, ±15° rotation, shear, jitter, erasing."""
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomAffine(degrees=15, translate=(0.2, 0.2), scale=(0.8, 1.2), shear=10),
        v2.ColorJitter(brightness=0.3, contrast=0.3),
        v2.RandomErasing(p=0.5, scale=(0.02, 0.15), value=0),
    ])


def build_augmentation(name: str, size: int = 48) -> Optional[Augment]:
    """The preset `name` as a callable (None for 'none')."""
    return AUGMENTATIONS.get(name)(size)
