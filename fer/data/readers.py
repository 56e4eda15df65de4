"""Readers for the two ways people bring FER2013: Kaggle's CSV and the image-folder layout.

Both return `FaceData`. Bad rows and files are skipped and counted in the `LoadReport`; a source
that yields nothing raises `DataError` with a message that says what was expected.
"""
from __future__ import annotations

import csv
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

import cv2
import numpy as np

from fer.core.constants import CLASS_NAMES, IMAGE_SIZE, SPLITS
from fer.data.facedata import DataError, FaceData, LoadReport

N_PIXELS = IMAGE_SIZE * IMAGE_SIZE
Progress = Callable[[float, str], None]  # (share done 0..1, what is happening) during a first decode
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")

# Folder names that mean a split when file names carry no `Training_`-style prefix.
SPLIT_FOLDERS = {"train": "Training", "training": "Training",
                 "test": "PublicTest", "publictest": "PublicTest", "val": "PublicTest",
                 "valid": "PublicTest", "validation": "PublicTest", "privatetest": "PrivateTest"}
_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_", re.IGNORECASE)
_SPLIT_CANON = {s.lower(): s for s in SPLITS}


# ---------------------------------------------------------------- CSV

def _counted_lines(fh, size: int, progress: Optional[Progress]) -> Iterable[str]:
    """The file's lines, reporting the share of bytes read every 2,000 lines."""
    done = 0
    for i, line in enumerate(fh):
        done += len(line)
        if progress is not None and i % 2000 == 0:
            progress(min(1.0, done / max(1, size)), f"Reading {size / 1e6:.0f} MB of CSV rows…")
        yield line


def read_fer_csv(path: str | os.PathLike, progress: Optional[Progress] = None) -> FaceData:
    """Read Kaggle's `fer2013.csv` or `icml_face_data.csv` (columns emotion, pixels, Usage)."""
    path = Path(path)
    report = LoadReport()
    # utf-8-sig drops a BOM; bytes that are not UTF-8 become U+FFFD, so such a row is skipped, not fatal.
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh, warnings.catch_warnings():
        # numpy's fast text parser only warns where a row has a bad token: make that an error to catch.
        warnings.simplefilter("error", DeprecationWarning)
        reader = csv.reader(_counted_lines(fh, path.stat().st_size, progress))
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty: expected a header 'emotion,pixels,Usage' and one row per face")
        # icml_face_data.csv writes ' Usage' and ' pixels' with a leading space.
        columns = {name.strip().lower(): i for i, name in enumerate(header)}
        missing = {"emotion", "pixels"} - columns.keys()
        if missing:
            # The file's own text is never echoed: it may be any file on the server (a key, an environment).
            raise DataError(f"{path}: not Kaggle's fer2013.csv: missing column(s) {', '.join(sorted(missing))} in "
                            f"its first line ({len(header)} fields); expected a header emotion,pixels,Usage")
        i_label, i_pixels, i_usage = columns["emotion"], columns["pixels"], columns.get("usage")
        if i_usage is None:
            report.notes.append("no Usage column: every row is treated as Training")
        images, labels, splits, sources = [], [], [], []
        for row_no, row in enumerate(_rows(reader, report), start=2):  # row 1 is the header
            if row is None:
                continue  # a row the csv module could not split (counted by _rows)
            source = f"csv:{row_no}"
            if not row or all(not cell.strip() for cell in row):
                continue
            parsed = _parse_csv_row(row, i_label, i_pixels, i_usage)
            if isinstance(parsed, str):
                report.skip(source, parsed)
                continue
            image, label, split = parsed
            images.append(image)
            labels.append(label)
            splits.append(split)
            sources.append(source)
    if not images:
        if report.n_skipped:
            raise DataError(f"{path}: no usable rows ({report.summary()})")
        raise DataError(f"{path} has a header but no rows")
    return FaceData(np.stack(images), np.asarray(labels, np.int64), np.asarray(splits, np.int8),
                    np.asarray(sources), str(path), report)


def _rows(reader, report: LoadReport) -> Iterable[Optional[List[str]]]:
    """The reader's rows; None for one it cannot split (an unclosed quote, a field over the size limit)."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:
            report.skip(f"csv:{reader.line_num}", "malformed CSV row")
            yield None


def _parse_csv_row(row: List[str], i_label: int, i_pixels: int,
                   i_usage: Optional[int]) -> Tuple[np.ndarray, int, int] | str:
    """(image, label, split code), or the reason the row is bad."""
    if len(row) <= max(i_label, i_pixels, i_usage or 0):
        return "missing columns"
    try:
        label = int(row[i_label].strip())
    except ValueError:
        return "non-numeric emotion"
    if not 0 <= label < len(CLASS_NAMES):
        return "emotion out of range 0-6"
    try:  # the fast path: 5x quicker than converting 2,304 tokens one by one
        values = np.fromstring(row[i_pixels], dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):
        values = None
    if values is None or len(values) != N_PIXELS:  # find out what is wrong with the row
        tokens = row[i_pixels].split()
        if len(tokens) != N_PIXELS:
            return f"wrong pixel count (expected {N_PIXELS})"
        try:
            values = np.asarray(tokens, dtype=np.int64)
        except (ValueError, OverflowError):
            return "non-numeric pixels"
    if values.min() < 0 or values.max() > 255:
        return "pixel value out of range 0-255"
    split = "Training"
    if i_usage is not None:
        split = _SPLIT_CANON.get(row[i_usage].strip().lower())
        if split is None:
            return "unknown Usage"
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE), label, SPLITS.index(split)


# ---------------------------------------------------------------- image folders

def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a symlink loop, a vanished entry
        return False


def _is_file(entry: os.DirEntry) -> bool:
    """A regular file (following links); symlink loops, dangling links, FIFOs and devices are not."""
    try:
        return entry.is_file()
    except OSError:
        return False


def list_image_files(root: str | os.PathLike) -> Tuple[List[Tuple[str, int, int]], LoadReport]:
    """Walk `root/<split>/<class>/*` and return (relative path, label, split code) per image file."""
    root = Path(root)
    report = LoadReport()
    class_index = {name: i for i, name in enumerate(CLASS_NAMES)}
    entries: List[Tuple[str, int, int]] = []
    top = sorted(p for p in root.iterdir() if _is_dir(p))
    if any(p.name.lower() in class_index for p in top):
        # Class folders straight under the root: one split, read from prefixes (else Training).
        split_dirs = [(root, "Training")]
    else:
        split_dirs = []
        for p in top:
            split = SPLIT_FOLDERS.get(p.name.lower())
            if split is None:
                report.notes.append(f"ignored folder {p.name!r} (not a split: expected train/ or test/)")
            else:
                split_dirs.append((p, split))
    for split_dir, folder_split in split_dirs:
        for class_dir in sorted(p for p in split_dir.iterdir() if _is_dir(p)):
            label = class_index.get(class_dir.name.lower())
            files = [f for f in sorted(os.scandir(class_dir), key=lambda e: e.name) if _is_file(f)]
            if label is None:
                for f in files:
                    report.skip(f"{class_dir.relative_to(root)}/{f.name}", f"unknown class folder {class_dir.name!r}")
                continue
            for f in files:
                rel = f"{class_dir.relative_to(root)}/{f.name}"
                if Path(f.name).suffix.lower() not in IMAGE_SUFFIXES:
                    report.skip(rel, "not an image file")
                    continue
                m = _PREFIX.match(f.name)
                split = _SPLIT_CANON[m.group(1).lower()] if m else folder_split
                entries.append((rel, label, SPLITS.index(split)))
    return entries, report


# FER2013's files are ~2 KB; a bigger one gets its header read first, so a decompression bomb
# (a small file that decodes to gigabytes) is refused before OpenCV allocates it.
BIG_FILE_BYTES = 64 * 1024
MAX_SOURCE_PIXELS = 50_000_000


def _too_many_pixels(path: str) -> bool:
    from PIL import Image  # only for the rare big file

    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # not something Pillow reads: OpenCV decides below
        return False
    return width * height > MAX_SOURCE_PIXELS


def _decode_gray48(path: str) -> Tuple[Optional[np.ndarray], bool]:
    """Decode one image file to 48×48 uint8 gray; (None, _) when unreadable, flag when resized."""
    try:
        if os.path.getsize(path) > BIG_FILE_BYTES and _too_many_pixels(path):
            return None, False
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None, False
    image = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if buf.size else None
    if image is None:
        return None, False
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        return cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA), True
    return image, False


def read_image_folders(root: str | os.PathLike, workers: int = 4, progress: Optional[Progress] = None) -> FaceData:
    """Read the Kaggle image-folder layout: `train/<class>/*.jpg`, `test/<class>/*.jpg`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    entries, report = list_image_files(root)
    if not entries:
        raise DataError(f"{root}: no images found. Expected train/<class>/*.jpg and test/<class>/*.jpg "
                        f"with classes {', '.join(CLASS_NAMES)} ({report.summary()})")
    # OpenCV releases the GIL while decoding, so threads give a real speed-up.
    decoded = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, result in enumerate(pool.map(_decode_gray48, (str(root / rel) for rel, _, _ in entries), chunksize=256)):
            decoded.append(result)
            if progress is not None and i % 1000 == 0:
                progress(i / len(entries), f"Decoding {len(entries):,} images…")
    keep = []
    for (rel, _, _), (image, resized) in zip(entries, decoded):
        if image is None:
            report.skip(rel, "unreadable image")
        else:
            keep.append(image)
            report.resized += resized
    if not keep:
        raise DataError(f"{root}: none of the {len(entries)} image files could be decoded")
    ok = [e for e, (image, _) in zip(entries, decoded) if image is not None]
    return FaceData(np.stack(keep), np.asarray([e[1] for e in ok], np.int64),
                    np.asarray([e[2] for e in ok], np.int8), np.asarray([e[0] for e in ok]), str(root), report)


# ---------------------------------------------------------------- locating a source

def resolve_source(path: str | os.PathLike) -> Tuple[str, Path]:
    """('csv' | 'folders', path) for a CSV file, a folder holding one, or an image-folder root."""
    path = Path(path).expanduser()
    if path.is_file():
        return "csv", path
    if not path.exists():
        raise DataError(f"{path} does not exist. Put FER2013 there (fer2013.csv or train/ and test/ "
                        "image folders) or set FER_DATA; see the README")
    for candidate in _candidate_dirs(path):
        for name in CSV_NAMES:
            if (candidate / name).is_file():
                return "csv", candidate / name
        if any(p.is_dir() and (p.name.lower() in SPLIT_FOLDERS or p.name.lower() in CLASS_NAMES)
               for p in candidate.iterdir()):
            return "folders", candidate
    raise DataError(f"{path}: found neither fer2013.csv nor train/ and test/ image folders")


def _candidate_dirs(path: Path) -> Iterable[Path]:
    yield path
    for sub in ("fer2013", "FER2013"):
        if (path / sub).is_dir():
            yield path / sub

