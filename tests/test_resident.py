"""The resident fast path: batched augmentation against torchvision's per-face transforms on real faces,
and resident batches against the DataLoader path (same order, same shards, same training)."""
import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from fer.config import AugmentConfig, load_config
from fer.data import DataError, RunData
from fer.data.augment import AUGMENTATIONS, build_augmentation
from fer.data.batched import (BatchAugment, apply_affine, apply_erase, apply_jitter, apply_resized_crop,
                              batched_augmentation)
from fer.data.loaders import train_loader
from fer.data.resident import ResidentBatches, resident_batches
from fer.runs.store import read_metrics
from fer.training.fit import train
from fer.training.validate import check_config


@pytest.fixture(scope="module")
def faces(full_data) -> torch.Tensor:
    """1,000 real Training faces (seeded), uint8 N×1×48×48."""
    index = np.random.default_rng(0).choice(np.flatnonzero(full_data.splits == 0), 1000, replace=False)
    return torch.from_numpy(full_data.images[np.sort(index)])[:, None]


def _full(n: int, value: float) -> torch.Tensor:
    return torch.full((n,), float(value))


@pytest.mark.parametrize("angle,tx,ty,zoom,shear", [(12, 3, -5, 1.1, 7), (-20, -4, 2, 0.85, -9), (90, 0, 0, 1, 0),
                                                    (0, 6, 0, 1, 0), (-15, 0, 0, 1.2, 10)])
def test_batched_affine_is_torchvisions_pixel_for_pixel(faces, angle, tx, ty, zoom, shear):
    x = faces[:64]
    expected = torch.stack([TF.affine(f, angle=angle, translate=[tx, ty], scale=zoom, shear=[shear, 0.0]) for f in x])
    n = len(x)
    got = apply_affine(x.float(), _full(n, angle), _full(n, tx), _full(n, ty), _full(n, zoom), _full(n, shear))
    assert (got.to(torch.uint8) == expected).float().mean() > 0.999  # nearest sampling: a rare tie may round apart


@pytest.mark.parametrize("box", [(0, 0, 48, 48), (3, 5, 40, 43), (10, 2, 30, 38)])
def test_batched_resized_crop_is_torchvisions(faces, box):
    x, (i, j, h, w) = faces[:64], box
    expected = torch.stack([TF.resized_crop(f, i, j, h, w, [48, 48], antialias=True) for f in x])
    got = apply_resized_crop(x.float(), *(_full(len(x), v) for v in box)).to(torch.uint8)
    # Enlarging a box: bilinear either way; torchvision's uint8 kernel rounds in fixed point, so ±1 gray level.
    assert (got.int() - expected.int()).abs().max() <= 1
    exact = torch.stack([TF.resized_crop(f.float(), i, j, h, w, [48, 48], antialias=True) for f in x])
    torch.testing.assert_close(apply_resized_crop(x.float(), *(_full(len(x), v) for v in box)).float(), exact.round(),
                               atol=1.0, rtol=0)  # the float kernel: equal up to where a value sits at .5
    assert (apply_resized_crop(x.float(), *(_full(len(x), v) for v in box)) == exact.round()).float().mean() > 0.995


@pytest.mark.parametrize("brightness,contrast,first", [(1.2, 0.8, True), (0.7, 1.3, False), (1.0, 1.25, True)])
def test_batched_jitter_is_torchvisions(faces, brightness, contrast, first):
    x = faces[:64]
    if first:
        expected = torch.stack([TF.adjust_contrast(TF.adjust_brightness(f, brightness), contrast) for f in x])
    else:
        expected = torch.stack([TF.adjust_brightness(TF.adjust_contrast(f, contrast), brightness) for f in x])
    n = len(x)
    got = apply_jitter(x.float(), _full(n, brightness), _full(n, contrast), torch.full((n,), first)).to(torch.uint8)
    assert (got.int() - expected.int()).abs().max() <= 1  # the face's mean in float32 vs torchvision's order of sums
    assert (got == expected).float().mean() > 0.99


def test_batched_erasing_and_padded_crop_are_exact(faces):
    x, n = faces[:64], 64
    chosen = torch.arange(n) % 2 == 0
    got = apply_erase(x.float(), _full(n, 5).long(), _full(n, 9).long(), _full(n, 12).long(), _full(n, 7).long(),
                      chosen).to(torch.uint8)
    for face, out, erased in zip(x, got, chosen):
        assert torch.equal(out, TF.erase(face, 5, 9, 12, 7, torch.tensor(0, dtype=torch.uint8)) if erased else face)
    cropped = BatchAugment(AugmentConfig(crop="pad", crop_padding=4))(x)
    padded = [TF.pad(f, [4], padding_mode="reflect") for f in x]
    for out, pad in zip(cropped, padded):  # every output is one 48×48 window of its reflect-padded face
        assert any(torch.equal(out, pad[:, i:i + 48, j:j + 48]) for i in range(9) for j in range(9))


STATISTICS_CASES = {
    **{name: (name, None) for name in ("light", "standard", "heavy")},
    "resized crop": ("custom", AugmentConfig(crop="resized", crop_scale=[0.5, 1.0])),
    "padded crop": ("custom", AugmentConfig(crop="pad", crop_padding=6)),
    "flip": ("custom", AugmentConfig(flip=True)),
    "rotation": ("custom", AugmentConfig(rotation=30.0)),
    "shift": ("custom", AugmentConfig(translate=0.15)),
    "rescale": ("custom", AugmentConfig(scale=[0.8, 1.2])),
    "shear": ("custom", AugmentConfig(shear=15.0)),
    "half turn": ("custom", AugmentConfig(half_turn=0.5)),
    "jitter": ("custom", AugmentConfig(jitter=0.4)),
    "erasing": ("custom", AugmentConfig(erasing=0.5, erasing_scale=[0.05, 0.3])),
    "study e v3, a quarter of the faces": ("custom", AugmentConfig(flip=True, rotation=10.0, shear=10.0, scale=[0.9, 1.1],
                                                                   jitter=0.2, erasing=0.1, probability=0.25)),
}


def _statistics(before: torch.Tensor, after: torch.Tensor) -> dict:
    a, b = after.float(), before.float()
    blocks = a.mean(0)[0].unfold(0, 12, 12).unfold(1, 12, 12).mean((-1, -2))  # where the brightness sits: 4×4
    return {"mean": a.mean().item(), "std": a.std().item(), "black share": (after == 0).float().mean().item() * 255,
            "change": (a - b).abs().mean().item(), "mirrored": ((a - b.flip(-1)).abs().mean() - (a - b).abs().mean()).item(),
            "blocks": blocks, "unchanged": (a == b).all(-1).all(-1).all(-1).float().mean().item()}


@pytest.mark.parametrize("case", sorted(STATISTICS_CASES))
def test_batched_augmentation_matches_the_per_face_statistics(faces, case):
    """On 1,000 real faces, each preset and transform changes them alike on both paths (gray levels, 0-255)."""
    name, params = STATISTICS_CASES[case]
    torch.manual_seed(1)
    per_face = build_augmentation(name, 48, params)
    expected = _statistics(faces, torch.stack([per_face(f) for f in faces]))
    supported, batched = batched_augmentation(name, params)
    assert supported and batched is not None
    got = _statistics(faces, batched(faces))
    for key in ("mean", "std", "black share", "change", "mirrored"):
        assert got[key] == pytest.approx(expected[key], abs=max(3.0, 0.04 * abs(expected[key]))), key
    assert (got["blocks"] - expected["blocks"]).abs().max() < 6.0
    assert got["unchanged"] == pytest.approx(expected["unchanged"], abs=0.05)  # a share of 1,000 faces: ±4 σ


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_registered_preset_has_a_batched_form(name):
    supported, batched = batched_augmentation(name, AugmentConfig(flip=True))
    assert supported
    assert (batched is None) == (name == "none")


def test_batched_augmentation_keeps_shape_dtype_and_the_untouched_share(faces):
    out = BatchAugment(AugmentConfig(half_turn=1.0, probability=0.25))(faces)
    assert out.shape == faces.shape and out.dtype == torch.uint8
    turned = (out == faces.flip(-1, -2)).all(-1).all(-1).all(-1).float().mean().item()
    assert 0.2 < turned < 0.3
    assert batched_augmentation("custom", AugmentConfig()) == (True, None)  # nothing asked for: the identity


def _small_split(full_data, n: int = 301):
    index = np.flatnonzero(full_data.splits == 0)[:n]
    return full_data.images[index], full_data.labels[index]


@pytest.mark.parametrize("sampler,world", [("none", 1), ("weighted", 1), ("none", 2)])
def test_resident_batches_are_the_dataloaders_batches(full_data, sampler, world):
    """Same order, shards and targets; a last batch of one face is dropped on both paths; same global RNG after."""
    images, labels = _small_split(full_data)  # 301 faces: 301 % 30 == 1 drops the last batch
    for rank in range(world):
        loader = train_loader(images, labels, None, 30, sampler, 7, torch.Generator().manual_seed(5),
                              rank=rank, world=world)
        resident = resident_batches(images, labels, None, 30, sampler, 7, torch.Generator().manual_seed(5),
                                    torch.device("cpu"), rank=rank, world=world)
        assert len(resident) == len(loader)
        torch.manual_seed(9)
        expected = [(x.clone(), y.clone()) for x, y in loader]
        after_loader = torch.rand(3)
        torch.manual_seed(9)
        got = list(resident)
        assert torch.equal(torch.rand(3), after_loader)
        assert len(got) == len(expected)
        for (gx, gy), (ex, ey) in zip(got, expected):
            assert torch.equal(gx, ex) and torch.equal(gy, ey)


def test_resident_batches_carry_soft_targets(full_data):
    images, labels = _small_split(full_data, 64)
    soft = np.eye(7, dtype=np.float32)[labels] * 0.8 + 0.2 / 7
    batches = resident_batches(images, labels, None, 16, "none", 7, torch.Generator().manual_seed(0),
                               torch.device("cpu"), targets=soft)
    assert isinstance(batches, ResidentBatches)
    x, y = next(iter(batches))
    assert y.dtype == torch.float32 and y.shape == (16, 7)


def test_run_data_picks_the_fast_path_and_says_why_not(small_folder, tmp_path, tiny_overrides, monkeypatch):
    cpu, gen = torch.device("cpu"), torch.Generator()
    auto = RunData.from_config(load_config(None, tiny_overrides(small_folder, tmp_path)))
    batches, source = auto.train_batches(gen, cpu)
    assert isinstance(batches, ResidentBatches) and source == "resident on cpu, batched augmentation (standard)"
    forced = RunData.from_config(load_config(None, tiny_overrides(small_folder, tmp_path, 2, "data.loader=dataloader")))
    loader, source = forced.train_batches(gen, cpu)
    assert isinstance(loader, torch.utils.data.DataLoader) and source == "DataLoader (data.loader=dataloader)"

    # A preset registered without a batched form (a plugin's): auto falls back and says so; resident refuses.
    monkeypatch.setitem(AUGMENTATIONS._entries, "plugin", lambda size=48, params=None: None)
    plugin = RunData.from_config(load_config(None, tiny_overrides(small_folder, tmp_path, 2, "augmentation=plugin")))
    loader, source = plugin.train_batches(gen, cpu)
    assert source == "DataLoader (augmentation 'plugin' has no batched form)"
    insist = load_config(None, tiny_overrides(small_folder, tmp_path, 2, "augmentation=plugin", "data.loader=resident"))
    with pytest.raises(Exception, match="has no batched form"):
        check_config(insist)
    with pytest.raises(DataError, match="has no batched form"):
        RunData.from_config(insist).train_batches(gen, cpu)


def test_training_on_either_path_is_the_same_training(small_folder, tmp_path, tiny_overrides):
    """Without augmentation both paths feed the same batches and RNG stream: the same losses, to the bit."""
    runs = {loader: train(load_config(None, tiny_overrides(small_folder, tmp_path / loader, 2, "augmentation=none",
                                                           f"data.loader={loader}")))
            for loader in ("resident", "dataloader")}
    a, b = (read_metrics(runs[k]) for k in ("resident", "dataloader"))
    assert list(a["train_loss"]) == list(b["train_loss"]) and list(a["val_acc"]) == list(b["val_acc"])
    assert "training batches: resident on cpu" in (runs["resident"] / "train.log").read_text()
    assert "training batches: DataLoader (data.loader=dataloader)" in (runs["dataloader"] / "train.log").read_text()
