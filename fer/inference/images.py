"""Robust image loading for uploads and the CLI: any common file in, RGB uint8 out, or a clear error.

Handles EXIF rotation, 16-bit and float images, CMYK, palette and alpha (composited on white),
refuses empty, truncated and non-image files, and caps the pixel count before decoding so a
decompression bomb cannot exhaust memory.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000  # ~50 MP: above any phone photo, far below a decompression bomb
MAX_BYTES = 200 * 1024 * 1024  # a file larger than this is refused before it is read into memory

ImageSource = Union[str, Path, bytes, BinaryIO]


class ImageError(ValueError):
    """The input is not an image this project can read; the message says why."""


def _read_bytes(source: ImageSource, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            raise ImageError(f"{path}: is a folder, not an image file")
        if not path.is_file():  # missing, vanished, or a FIFO/device that a read would hang on
            raise ImageError(f"{path}: no such file")
        try:
            if path.stat().st_size > max_bytes:
                raise ImageError(f"{path}: {path.stat().st_size / 2**20:.0f} MB, over the "
                                 f"{max_bytes / 2**20:.0f} MB limit for an image")
            return path.read_bytes()
        except OSError as e:  # vanished since the check, or not readable
            raise ImageError(f"{path}: cannot be read ({e.strerror or e})") from None
    else:
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageError(f"{len(data) / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit for an image")
    return data


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        lo, hi = np.nanmin(values), np.nanmax(values)
        gray = np.nan_to_num((values - lo) / (hi - lo) * 255.0 if hi > lo else values * 0)
        return np.ascontiguousarray(np.repeat(gray.astype(np.uint8)[..., None], 3, axis=2))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def load_image(source: ImageSource, name: str = "", max_pixels: int = MAX_PIXELS,
               max_bytes: int = MAX_BYTES) -> np.ndarray:
    """An image file, path or bytes as an upright RGB uint8 array (H×W×3); the first frame of an animation.

    Refused with an ImageError, before decoding: more than `max_bytes`, more than `max_pixels`, not an image.
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "image")
    try:
        data = _read_bytes(source, max_bytes)
    except ImageError as e:
        raise ImageError(f"{label}: {str(e).split(': ', 1)[-1]}" if name else str(e)) from None
    if not data:
        raise ImageError(f"{label}: the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image file (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{label}: over the {max_pixels / 1e6:.0f} MP limit (a decompression bomb)") from None
    except Exception as e:  # a header crafted to break a format plugin: any error is "damaged", never a crash
        raise ImageError(f"{label}: not a readable image ({type(e).__name__})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"{label}: {width}×{height} is {width * height / 1e6:.0f} MP, over the "
                         f"{max_pixels / 1e6:.0f} MP limit (a decompression bomb or a huge scan)")
    if width == 0 or height == 0:
        raise ImageError(f"{label}: the image has no pixels")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)  # phone photos store rotation in EXIF
        return _to_rgb(image)
    except MemoryError:
        raise
    except Exception as e:  # truncated data, a broken plugin state: Pillow raises many kinds
        raise ImageError(f"{label}: the image data is damaged or truncated ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:200]})") from None
