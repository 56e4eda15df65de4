"""The registries' listings that the CLI's parsers need, kept in `catalog.json` beside this module.

The registries fill as their modules import, and those import PyTorch, MediaPipe and grad-cam
(seconds, minutes on a loaded machine). `fer --help` and every parser read the listings from here
instead, so the CLI answers at once; the commands themselves import the registries and check the
names again. `python -m fer.cli.catalog` writes the file from the live registries, and a test
fails when the two differ.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Dict

CATALOG_FILE = Path(__file__).with_name("catalog.json")


def build_catalog() -> Dict[str, Any]:
    """The listings from the live registries (imports everything that registers)."""
    from fer.data.augment import AUGMENTATIONS
    from fer.inference.classifiers import BACKENDS
    from fer.inference.explain import CAM_METHODS, DEFAULT_CAM_METHOD
    from fer.inference.faces import FACE_DETECTORS
    from fer.inference.averaging import DEFAULT_TTA, TTA_MODES
    from fer.jobs.suites import SUITES
    from fer.jobs.sweeps import PRUNERS
    from fer.models import MODELS
    from fer.training.optim import OPTIMIZERS, SCHEDULERS

    suites = {}
    for name in SUITES.names():
        info = SUITES.info(name)
        suites[name] = {"title": info["title"], "reported": info.get("reported") or "",
                        "variants": [v.name for v in SUITES.get(name)(30)]}
    return {
        "models": MODELS.names(), "optimizers": OPTIMIZERS.names(), "schedulers": SCHEDULERS.names(),
        "augmentations": AUGMENTATIONS.names(), "detectors": FACE_DETECTORS.names(),
        "cam_methods": CAM_METHODS.names(), "default_cam_method": DEFAULT_CAM_METHOD,
        "backends": list(BACKENDS), "tta_modes": list(TTA_MODES), "default_tta": DEFAULT_TTA,
        "pruners": {name: PRUNERS.info(name)["title"] for name in PRUNERS.names()},
        "suites": suites,
    }


@functools.lru_cache(maxsize=1)
def catalog() -> Dict[str, Any]:
    """The listings as written by `python -m fer.cli.catalog`."""
    return json.loads(CATALOG_FILE.read_text())


def write_catalog() -> Path:
    """Write `catalog.json` from the live registries."""
    CATALOG_FILE.write_text(json.dumps(build_catalog(), indent=1, sort_keys=True) + "\n")
    return CATALOG_FILE


if __name__ == "__main__":
    print(write_catalog())
