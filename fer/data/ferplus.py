"""FER+ labels: Microsoft's relabelling of FER2013 by ten annotators per face (Barsoum et al., 2016).

`fer2013new.csv` (MIT licence, github.com/microsoft/FERPlus) has one row per row of Kaggle's
`fer2013.csv`, in the same order: `Usage, Image name, neutral, happiness, surprise, sadness, anger,
disgust, fear, contempt, unknown, NF` (vote counts). The targets follow the FER+ reference code
(`ferplus.py`, `_process_data`): single votes are dropped as outliers; "majority" keeps a face only
when one emotion has more than half of the remaining votes; "soft" keeps the top emotions up to three
(and 75% of the votes) as a probability target. Faces whose target falls on unknown or not-a-face
(NF), or with no image name (FER+ removed them), are dropped. Eight classes: contempt is added.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from fer.config import FERPLUS_MODES, RunConfig
from fer.core.constants import CLASS_NAMES, SPLITS
from fer.data.cache import load_fer2013
from fer.data.facedata import DataError, FaceData, LoadReport
from fer.data.staged import load_staged, staged_file, staged_key

FERPLUS_CLASSES = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
VOTES_FILE = "fer2013new.csv"
WHERE = "https://github.com/microsoft/FERPlus (fer2013new.csv, MIT licence)"


def ferplus_target(votes: np.ndarray, mode: str = "majority") -> Optional[np.ndarray]:
    """The 8-class target of one face's 10 vote counts, or None when FER+ drops the face."""
    if mode not in FERPLUS_MODES:
        raise ValueError(f"FER+ mode must be one of {FERPLUS_MODES}, got {mode!r}")
    raw = np.where(np.asarray(votes, dtype=np.float64) <= 1.0, 0.0, votes)  # one vote is an outlier
    total = raw.sum()
    if total <= 0:
        return None
    target = np.zeros(len(VOTE_COLUMNS))
    if mode == "majority":
        top = int(raw.argmax())
        if raw[top] <= 0.5 * total:
            return None  # no majority: FER+ calls it unknown
        target[top] = raw[top]
    else:  # the reference loop: whole ties at once, stop at unknown / not-a-face unless it comes first
        kept, count, valid = 0.0, 0, True
        while kept < 0.75 * total and count < 3 and valid:
            top_votes = raw.max()
            for i in np.flatnonzero(raw == top_votes):
                target[i], raw[i] = top_votes, 0.0
                kept, count = kept + top_votes, count + 1
                if i >= len(FERPLUS_CLASSES):
                    valid = False
                    if target.sum() > top_votes:  # emotions came before it: leave it out
                        target[i], count = 0.0, count - 1
                    break
        if target.sum() <= 0.5 * total or count > 3:
            return None
    if target.argmax() >= len(FERPLUS_CLASSES):
        return None
    emotions = target[:len(FERPLUS_CLASSES)]
    return (emotions / emotions.sum()).astype(np.float32)


def read_votes(path: str | Path) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(votes N×10, usage N, has-image-name N) of fer2013new.csv, in row order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"FER+ labels need {VOTES_FILE} beside fer2013.csv (or data.ferplus_path); not found at "
                        f"{path}. Get it from {WHERE}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in ("Usage", "Image name", *VOTE_COLUMNS) if c not in header]
        if missing:
            raise DataError(f"{path}: not FER+'s {VOTES_FILE}: missing column(s) {missing}")
        at = {name: header.index(name) for name in ("Usage", "Image name", *VOTE_COLUMNS)}
        votes, usage, named = [], [], []
        for line, row in enumerate(reader, start=2):
            try:
                votes.append([float(row[at[c]]) for c in VOTE_COLUMNS])
            except (IndexError, ValueError):
                raise DataError(f"{path}: row {line} has no valid vote counts") from None
            usage.append(row[at["Usage"]].strip())
            named.append(bool(row[at["Image name"]].strip()))
    return np.asarray(votes), np.asarray(usage), np.asarray(named)


def apply_ferplus(data: FaceData, votes_path: str | Path, mode: str = "majority") -> FaceData:
    """FER2013 from fer2013.csv relabelled with FER+ votes: 8 classes, dropped faces removed, soft targets kept."""
    if not all(str(s).startswith("csv:") for s in data.sources[:1]):
        raise DataError("FER+ labels need Kaggle's fer2013.csv as the data source: its rows are what "
                        f"{VOTES_FILE}'s rows refer to (image folders lose that order)")
    votes, usage, named = read_votes(votes_path)
    rows = np.array([int(str(s)[4:]) - 2 for s in data.sources])  # csv:<record>, record 1 is the header
    if rows.max() >= len(votes):
        raise DataError(f"{votes_path} has {len(votes)} rows but fer2013.csv has at least {rows.max() + 1}: "
                        "these files do not belong together")
    mismatched = int((usage[rows] != np.asarray(SPLITS)[data.splits]).sum())
    if mismatched > 0.01 * len(rows):
        raise DataError(f"{mismatched} rows of {votes_path} have another Usage than fer2013.csv: "
                        "these files do not belong together")
    targets = [ferplus_target(votes[r], mode) if named[r] else None for r in rows]
    keep = np.array([t is not None for t in targets])
    if not keep.any():
        raise DataError(f"no face of {data.origin} keeps a FER+ label")
    soft = np.stack([t for t in targets if t is not None])
    out = data.subset(np.flatnonzero(keep))
    out.labels, out.class_names, out.soft_labels = soft.argmax(1).astype(np.int64), FERPLUS_CLASSES, soft
    out.origin = f"{data.origin} + FER+ {mode} labels"
    dropped = int((~keep).sum())
    out.report = LoadReport.from_dict(data.report.to_dict())  # a copy: the cached data's report stays as it is
    out.report.notes.append(f"FER+ ({mode}): {dropped} faces dropped (unknown, not a face, no majority or "
                            "removed by FER+)")
    return out


def run_class_names(cfg: RunConfig) -> Sequence[str]:
    """The classes a run's model predicts: FER2013's seven, or FER+'s eight."""
    return FERPLUS_CLASSES if cfg.data.labels == "ferplus" else CLASS_NAMES


def load_run_data(cfg: RunConfig, path: Optional[str] = None) -> FaceData:
    """FER2013 as a run sees it: its source (or `path`), relabelled with FER+ votes when data.labels=ferplus.

    A process started with staged faces (`fer.data.staged`: a Ray node without the source) reads those."""
    staged = staged_file()
    if staged is not None and path is None:
        return load_staged(staged, staged_key(cfg))
    data = load_fer2013(path or cfg.data.path or None)
    if cfg.data.labels == "ferplus":
        votes = cfg.data.ferplus_path or Path(data.origin).with_name(VOTES_FILE)
        data = apply_ferplus(data, votes, cfg.data.ferplus_mode)
    return data
