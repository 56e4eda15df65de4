"""Augmentation of whole batches on their device: the batched form of every preset and `aug.*` transform.

The resident fast path (`fer.data.resident`) keeps the training split as one uint8 tensor on the training
device and augments a batch at a time, where the DataLoader path calls torchvision's v2 transforms once
per face. Each transform here draws its random parameters per face the way the v2 transform does per call
(same ranges, same rejection sampling), from the global torch RNG on the CPU (seeded per epoch by the
trainer, so a resumed run retraces its epochs), and applies them to the batch with one `grid_sample`,
gather or `torch.where`. The order is the `custom` preset's: crop, flip, affine, half turn, jitter,
erasing, all of it on `aug.probability` of the faces. `tests/test_resident.py` compares the statistics of
both forms on real faces.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from fer.config import AugmentConfig
from fer.data.augment import PRESET_SETTINGS

ERASING_RATIO = (0.3, 3.3)  # v2.RandomErasing's default aspect-ratio range
TRIES = 10  # RandomResizedCrop and RandomErasing draw up to 10 boxes before falling back


def _uniform(n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, dtype=torch.float64)


def _chance(n: int, p: float) -> torch.Tensor:
    return torch.rand(n) < p


def _first_valid(valid: torch.Tensor, *values: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """(any valid try, then each value at its row's first valid try): the loop of `get_params`, batched."""
    first = valid.int().argmax(1, keepdim=True)
    return (valid.any(1),) + tuple(v.gather(1, first).squeeze(1) for v in values)


def _boxes(n: int, size: int, scale, ratio, strict: bool) -> Tuple[torch.Tensor, ...]:
    """(found, h, w) per face: a box of `scale` × the area and aspect ratio in `ratio` (log-uniform)."""
    area = size * size * _uniform(n * TRIES, *scale).view(n, TRIES)
    aspect = torch.exp(_uniform(n * TRIES, math.log(ratio[0]), math.log(ratio[1]))).view(n, TRIES)
    # RandomResizedCrop's w is sqrt(area·ratio); RandomErasing's h is: the same draw with the roles swapped.
    long_side = torch.round(torch.sqrt(area * aspect)).long()
    short_side = torch.round(torch.sqrt(area / aspect)).long()
    if strict:  # erasing: strictly inside
        h, w = long_side, short_side
        valid = (h < size) & (w < size)
    else:
        h, w = short_side, long_side
        valid = (w > 0) & (w <= size) & (h > 0) & (h <= size)
    return _first_valid(valid, h, w)


def _offsets(extent: torch.Tensor) -> torch.Tensor:
    """A uniform integer offset in [0, extent] per face (torch.randint's range, batched)."""
    return torch.floor(torch.rand(len(extent), dtype=torch.float64) * (extent + 1).double()).long()


def _sample(x: torch.Tensor, theta: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


def resized_crop(x: torch.Tensor, scale, ratio) -> torch.Tensor:
    """v2.RandomResizedCrop(size, scale, ratio): a box per face, resized back (bilinear) to the full size."""
    n, size = x.shape[0], x.shape[-1]
    found, h, w = _boxes(n, size, scale, ratio, strict=False)
    h, w = torch.where(found, h, size), torch.where(found, w, size)  # the fallback: the whole face (ratio ∋ 1)
    return apply_resized_crop(x, _offsets(size - h), _offsets(size - w), h, w)


def apply_resized_crop(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, h: torch.Tensor,
                       w: torch.Tensor) -> torch.Tensor:
    """v2.functional.resized_crop to the full size per face (top, left, height, width), batched."""
    n, size = x.shape[0], x.shape[-1]
    centres = torch.arange(size, dtype=torch.float64) + 0.5

    def along(start: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        # Resizing the crop samples pixel centres and clamps at the crop's own edges (not the face's).
        source = start[:, None] + centres * (length[:, None] / size) - 0.5
        source = torch.minimum(torch.maximum(source, start[:, None].double()), (start + length - 1)[:, None].double())
        return (2 * source + 1) / size - 1

    cols, rows = along(j, w), along(i, h)
    grid = torch.stack([cols[:, None, :].expand(n, size, size), rows[:, :, None].expand(n, size, size)], -1)
    out = F.grid_sample(x, grid.to(x.device, x.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return out.round_()  # v2 rounds a resized uint8 face


def padded_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """v2.RandomCrop(size, padding, padding_mode='reflect'): exact, by gathering each face's window."""
    n, size = x.shape[0], x.shape[-1]
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    i = _offsets(torch.full((n,), 2 * padding)).to(x.device)
    j = _offsets(torch.full((n,), 2 * padding)).to(x.device)
    steps = torch.arange(size, device=x.device)
    rows, cols = (i[:, None] + steps)[:, :, None], (j[:, None] + steps)[:, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None], 0, rows, cols][:, None]


def affine(x: torch.Tensor, degrees: float, translate: float, scale, shear: float) -> torch.Tensor:
    """v2.RandomAffine(degrees, translate, scale, shear): nearest sampling, zeros outside, per-face parameters."""
    n, limit = x.shape[0], translate * x.shape[-1]
    return apply_affine(x, _uniform(n, -degrees, degrees), torch.round(_uniform(n, -limit, limit)),
                        torch.round(_uniform(n, -limit, limit)), _uniform(n, *scale), _uniform(n, -shear, shear))


def apply_affine(x: torch.Tensor, angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, zoom: torch.Tensor,
                 shear: torch.Tensor) -> torch.Tensor:
    """v2.functional.affine per face (degrees, pixels, factor, x-shear degrees; one value per face), batched."""
    n, size = x.shape[0], x.shape[-1]
    rot, sx = torch.deg2rad(angle.double()), torch.deg2rad(shear.double())
    # torchvision's _get_inverse_affine_matrix about the centre, no y-shear, in normalised coordinates
    a, c = torch.cos(rot), torch.sin(rot)
    b, d = -torch.cos(rot) * torch.tan(sx) - torch.sin(rot), -torch.sin(rot) * torch.tan(sx) + torch.cos(rot)
    m = torch.stack([d, -b, -c, a], 1).view(n, 2, 2) / zoom.double().view(n, 1, 1)
    shift = -(m @ torch.stack([tx.double(), ty.double()], 1).view(n, 2, 1)) / (size / 2)
    return _sample(x, torch.cat([m, shift], 2), "nearest", "zeros")


def jitter(x: torch.Tensor, amount: float) -> torch.Tensor:
    """v2.ColorJitter(brightness=amount, contrast=amount): both, in a random order per face, truncated to uint8."""
    n, low = x.shape[0], max(0.0, 1 - amount)
    return apply_jitter(x, _uniform(n, low, 1 + amount), _uniform(n, low, 1 + amount),
                        _chance(n, 0.5))  # v2 shuffles its steps per call


def apply_jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                 brightness_first: torch.Tensor) -> torch.Tensor:
    """v2.functional.adjust_brightness and adjust_contrast per face, in either order, batched."""
    n = x.shape[0]
    bright = brightness.float().view(n, 1, 1, 1).to(x.device)
    factor = contrast.float().view(n, 1, 1, 1).to(x.device)

    def brighten(img: torch.Tensor) -> torch.Tensor:
        return (img * bright).clamp_(0, 255).floor_()

    def contrast_of(img: torch.Tensor) -> torch.Tensor:
        mean = img.mean(dim=(1, 2, 3), keepdim=True)
        return (img * factor + mean * (1 - factor)).clamp_(0, 255).floor_()

    first = brightness_first.view(n, 1, 1, 1).to(x.device)
    return torch.where(first, contrast_of(brighten(x)), brighten(contrast_of(x)))


def erase(x: torch.Tensor, p: float, scale) -> torch.Tensor:
    """v2.RandomErasing(p, scale, value=0): one zeroed box on a share `p` of the faces."""
    n, size = x.shape[0], x.shape[-1]
    chosen = _chance(n, p)
    found, h, w = _boxes(n, size, scale, ERASING_RATIO, strict=True)
    return apply_erase(x, _offsets(size - h), _offsets(size - w), h, w, chosen & found)


def apply_erase(x: torch.Tensor, i: torch.Tensor, j: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
                chosen: torch.Tensor) -> torch.Tensor:
    """v2.functional.erase with zeros on the `chosen` faces (top, left, height, width per face), batched."""
    n, steps = x.shape[0], torch.arange(x.shape[-1])
    rows = (steps >= i[:, None]) & (steps < (i + h)[:, None])
    cols = (steps >= j[:, None]) & (steps < (j + w)[:, None])
    mask = (rows[:, :, None] & cols[:, None, :] & chosen.view(n, 1, 1))[:, None].to(x.device)
    return x.masked_fill(mask, 0)


def _where(chosen: torch.Tensor, changed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.where(chosen.view(-1, 1, 1, 1).to(x.device), changed, x)


class BatchAugment:
    """The `aug.*` transforms on a batch: uint8 N×1×S×S faces in, augmented uint8 faces out, on their device."""

    def __init__(self, params: AugmentConfig) -> None:
        self.params = params

    @property
    def active(self) -> bool:
        """Whether any transform is on (else the faces would pass unchanged)."""
        p = self.params
        return bool(p.crop != "none" or p.flip or p.rotation > 0 or p.translate > 0 or tuple(p.scale) != (1.0, 1.0)
                    or p.shear > 0 or p.half_turn > 0 or p.jitter > 0 or p.erasing > 0)

    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        p, n = self.params, faces.shape[0]
        x = faces.float()
        if p.crop == "resized":
            x = resized_crop(x, p.crop_scale, p.crop_ratio)
        elif p.crop == "pad":
            x = padded_crop(x, p.crop_padding)
        if p.flip:
            x = _where(_chance(n, 0.5), x.flip(-1), x)
        if p.rotation > 0 or p.translate > 0 or tuple(p.scale) != (1.0, 1.0) or p.shear > 0:
            x = affine(x, p.rotation, p.translate, p.scale, p.shear)
        if p.half_turn > 0:
            x = _where(_chance(n, p.half_turn), x.flip(-1, -2), x)
        if p.jitter > 0:
            x = jitter(x, p.jitter)
        if p.erasing > 0:
            x = erase(x, p.erasing, p.erasing_scale)
        out = x.to(torch.uint8)
        return _where(_chance(n, p.probability), out, faces) if p.probability < 1 else out


def batched_augmentation(name: str, params: Optional[AugmentConfig] = None) -> Tuple[bool, Optional[BatchAugment]]:
    """(whether preset `name` has a batched form, the batched transform or None for the identity)."""
    if name == "none":
        return True, None
    settings = (params or AugmentConfig()) if name == "custom" else PRESET_SETTINGS.get(name)
    if settings is None:
        return False, None
    augment = BatchAugment(settings)
    return True, augment if augment.active else None
