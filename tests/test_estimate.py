"""The run-time estimate: the faces a run sees, and a real measurement of the run's model here."""
from fer.config import load_config
from fer.training.estimate import estimate_run, measure_throughput, planned_images
from fer.training.presets import PRESETS, config_path, preset_config

SIZES = {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}


def test_planned_images_follow_the_split_settings():
    assert planned_images(load_config(None), SIZES) == {"train": 25838, "val": 2871, "test": 3589}
    limited = load_config(None, ["data.limit=5000", "data.test_limit=1000"])
    assert planned_images(limited, SIZES) == {"train": 5000, "val": 2871, "test": 1000}
    pooled = load_config(None, ["data.train_splits=[Training, PublicTest]", "data.val_fraction=0.25",
                                "data.test_split=PrivateTest"])
    assert planned_images(pooled, SIZES) == {"train": 24223, "val": 8075, "test": 3589}
    other = load_config(None, ["data.val_source=PublicTest", "data.test_split=PrivateTest"])
    assert planned_images(other, SIZES) == {"train": 28709, "val": 3589, "test": 3589}


def test_the_estimate_times_the_runs_own_model_here():
    cfg = load_config(None, ["model.kwargs={widths: [8, 16, 32], hidden: 32}", "train.epochs=3"])
    speed = measure_throughput(cfg)
    assert speed.train_images_per_s > 10 and speed.eval_images_per_s > speed.train_images_per_s  # no backward pass
    estimate = estimate_run(cfg, SIZES, speed)
    expected = 3 * (25838 / speed.train_images_per_s + 2871 / speed.eval_images_per_s) + \
        (2871 + 3589) / speed.eval_images_per_s
    assert abs(estimate.seconds - expected) < 1e-6 and "25,838 training" in estimate.describe()


def test_every_preset_loads_and_names_itself():
    for name in PRESETS.in_order():
        assert PRESETS.get(name).is_file() and preset_config(name).name
    assert config_path("quick") == PRESETS.get("quick")  # `fer train --config quick`
    assert str(config_path("configs/quick.yaml")).endswith("quick.yaml")
