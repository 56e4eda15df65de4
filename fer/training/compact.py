"""`fer release RUN --int8-weights`: a run released with its weights stored as int8, scored as stored.

int8 weights take a quarter of the fp32 bytes, which is what lets an ensemble and a student ship beside
the default model within the release limit. Rounding changes the predictor a little, so the release does
not quote the fp32 run's numbers: a copy of the run with the int8 weights is re-calibrated on validation
(the temperature is fitted for the predictor as shipped) and scored on validation and the test split, and
that copy is what gets released.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

from fer.core.errors import UserError
from fer.core.files import read_json
from fer.runs.checkpoint import compact_checkpoint, load_checkpoint
from fer.runs.release import SHIPPED_FILES, release_run
from fer.runs.store import SHIPPED_RUN_DIR
from fer.runs.writer import save_checkpoint
from fer.training.evaluate import calibrate_run

# The run's records that stay true for its int8 copy (evaluations are made again, the export is stale).
KEPT_RECORDS = tuple(name for name in SHIPPED_FILES if name not in ("best.pt", "eval_val.json"))


def release_compact(run_dir: Path, dest: Path = SHIPPED_RUN_DIR, data_path: Optional[str] = None,
                    command: str = "") -> Path:
    """Release `run_dir` with int8-stored weights, re-calibrated and scored on `data_path` (or the run's data)."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json", {}) or {}
    if status.get("state") != "completed" or not (run_dir / "best.pt").is_file():
        raise UserError(f"{run_dir.name} has not completed (state {status.get('state')!r}): only a finished run "
                        "with its best.pt can be released")
    with tempfile.TemporaryDirectory(prefix="fer-release-") as tmp:
        staged = Path(tmp) / run_dir.name  # the release's RUN_ID is the run's own
        staged.mkdir()
        for name in KEPT_RECORDS:
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, staged / name)
        save_checkpoint(staged, "best.pt", compact_checkpoint(load_checkpoint(run_dir / "best.pt")))
        calibrate_run(staged, data_path)  # eval_val and the test split's eval, of the int8 weights
        return release_run(staged, dest, command, int8_weights=True)
