"""Config layering, optimizer/scheduler registries, and the one preprocessing path."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fer.config import ConfigError, RunConfig, flatten, load_config
from fer.data.loaders import eval_loader
from fer.data.preprocess import Preprocessing, to_model_input
from fer.inference.faces import Face, crop_face, to_gray
from fer.training.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler


def test_config_layers_defaults_file_then_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: from-file\noptim:\n  name: sgd\n  lr: 0.05\ntrain:\n  epochs: 7\n"
                    "model:\n  kwargs:\n    widths: [16, 32]\n")
    cfg = load_config(path, ["optim.lr=0.01", "tags=[a, b]", "model.kwargs.dropout=0.2"])
    assert cfg.name == "from-file" and cfg.optim.name == "sgd"
    assert cfg.optim.lr == 0.01  # --set wins over the file
    assert cfg.train.epochs == 7 and cfg.train.batch_size == RunConfig().train.batch_size  # file, default
    assert cfg.model.kwargs == {"widths": [16, 32], "dropout": 0.2} and cfg.tags == ["a", "b"]
    (tmp_path / "config.json").write_text(cfg.to_json())
    assert load_config(tmp_path / "config.json") == cfg  # JSON round trip


def test_config_rejects_unknown_keys_and_wrong_types(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'optim.lrr'"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="train.epochs: expected int"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.lr"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": {"colour": "blue"}}))
    with pytest.raises(ConfigError, match="data.colour"):
        load_config(bad)
    assert load_config(None, ["optim.lr=1"]).optim.lr == 1.0  # ints become floats where floats are due


def test_flatten_for_tables():
    flat = flatten(RunConfig().to_dict())
    assert flat["optim.lr"] == 1e-3 and flat["sched.milestones"] == "[20, 40]"


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizers_reduce_a_convex_loss(name):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    cfg = load_config(None, [f"optim.name={name}", "optim.lr=0.05", "optim.weight_decay=0"]).optim
    opt = build_optimizer([w], cfg)
    start = (w ** 2).sum().item()
    for _ in range(50):
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        opt.step(loss=loss.detach()) if getattr(opt, "takes_loss", False) else opt.step()
    assert (w ** 2).sum().item() < 0.5 * start


# The learning rate at the start of each of 6 epochs (5 batches each), stepped at the scheduler's declared
# cadence exactly as the training loop does: a schedule stepped per batch when it counts epochs (or the
# reverse) ends far too early or never, and its trace differs from these.
SCHEDULE_TRACES = {
    "none": [0.1] * 6,
    "step": [0.1, 0.1, 0.01, 0.01, 0.001, 0.001],  # step_size 2
    "multistep": [0.1, 0.1, 0.01, 0.01, 0.001, 0.001],  # milestones [2, 4]
    "plateau": [0.1, 0.1, 0.05, 0.025, 0.0125, 0.00625],  # an accuracy that never improves, patience 0
    "cosine": [0.05 * (1 + math.cos(math.pi * e / 6)) for e in range(6)],
    "warmup_cosine": [0.02, 0.1, 0.09045, 0.06545, 0.03455, 0.00955],  # one warm-up epoch, then cosine
    "onecycle": [0.004, 0.07037, 0.09778, 0.075, 0.03887, 0.00869],  # max_lr / 25 up to the peak at 30%, down
}


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_each_scheduler_spans_the_run_at_its_cadence(name):
    cfg = load_config(None, [f"sched.name={name}", "sched.step_size=2", "sched.milestones=[2, 4]",
                             "sched.patience=0", "sched.warmup_epochs=1"]).sched
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    sched, cadence = build_scheduler(opt, cfg, epochs=6, steps_per_epoch=5)
    assert (sched is None) == (name == "none")
    starts = []
    for _ in range(6):
        starts.append(opt.param_groups[0]["lr"])
        for _ in range(5):
            opt.step()
            if cadence == "batch":
                sched.step()
        if cadence == "epoch" and sched is not None:
            sched.step()
        elif cadence == "plateau":
            sched.step(0.5)
    assert starts == pytest.approx(SCHEDULE_TRACES[name], rel=1e-3), cadence
    if name in ("cosine", "warmup_cosine"):  # annealed to min_lr exactly when the run ends
        assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)


def test_onecycle_peaks_mid_run_and_plateau_reduces():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1)
    sched, _ = build_scheduler(opt, load_config(None, ["sched.name=onecycle"]).sched, epochs=2, steps_per_epoch=10)
    lrs = []
    for _ in range(20):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert max(lrs) == pytest.approx(0.1, rel=0.05) and lrs[-1] < 0.01 and lrs[0] < lrs[5]
    opt = torch.optim.SGD([w], lr=0.1)
    sched, _ = build_scheduler(opt, load_config(None, ["sched.name=plateau", "sched.patience=1"]).sched, 10, 1)
    for _ in range(4):
        sched.step(0.5)  # validation accuracy never improves
    assert opt.param_groups[0]["lr"] < 0.1


def _photo_path(images, spec: Preprocessing) -> torch.Tensor:
    """Faces as the photo/webcam pipeline sees them: a whole-image face box, cropped, then preprocessed."""
    crops = [crop_face(to_gray(img), Face((0, 0, img.shape[1], img.shape[0])), margin=0.0) for img in images]
    return to_model_input(torch.from_numpy(np.stack(crops))[:, None], spec)


def test_eval_path_and_photo_path_give_identical_tensors(small_data):
    """Parity: a FER2013 image through the evaluation loader and through the face-crop path."""
    spec = Preprocessing()
    images = small_data.images[:64]
    batch, _ = next(iter(eval_loader(images, small_data.labels[:64], batch_size=64)))
    from_loader = to_model_input(batch, spec)
    from_faces = _photo_path(list(images), spec)
    assert torch.equal(from_loader, from_faces)
    # A colour (RGB) copy of the same faces gives the same tensor too.
    rgb = [np.repeat(img[:, :, None], 3, axis=2) for img in images]
    assert torch.equal(_photo_path(rgb, spec), from_loader)
    assert from_loader.shape == (64, 1, 48, 48) and abs(from_loader.mean().item()) < 0.5


def test_preprocessing_resizes_and_expands_channels(small_data):
    spec = Preprocessing(input_size=64, in_chans=3)
    x = _photo_path([small_data.images[0]], spec)
    assert x.shape == (1, 3, 64, 64) and torch.equal(x[:, 0], x[:, 2])
    with pytest.raises(TypeError):
        to_model_input(torch.zeros(1, 1, 48, 48), spec)


@pytest.mark.parametrize("size,chans", [(48, 1), (64, 3), (224, 3), (40, 1)])
def test_the_numpy_path_for_onnx_runtime_gives_the_tensor_path_s_input(small_data, size, chans):
    """ONNX Runtime predicts without PyTorch: arrays go through the same arithmetic as tensors."""
    spec = Preprocessing(input_size=size, in_chans=chans)
    faces = np.ascontiguousarray(small_data.images[:32, None])
    from_array, from_tensor = to_model_input(faces, spec), to_model_input(torch.from_numpy(faces), spec).numpy()
    assert isinstance(from_array, np.ndarray) and from_array.dtype == np.float32
    assert from_array.shape == from_tensor.shape == (32, chans, size, size)
    tolerance = 0 if size == 48 else 1e-4  # no resize: bit-identical; bilinear resizes agree to float rounding
    assert np.abs(from_array - from_tensor).max() <= tolerance
    with pytest.raises(TypeError):
        to_model_input(faces.astype(np.float32), spec)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_configs_load_and_name_registered_choices(path):
    from fer.data.augment import AUGMENTATIONS
    from fer.models import MODELS
    cfg = load_config(path)
    assert cfg.model.name in MODELS and cfg.optim.name in OPTIMIZERS and cfg.sched.name in SCHEDULERS
    assert cfg.augmentation in AUGMENTATIONS
