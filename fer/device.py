"""Device and mixed-precision choices."""
from __future__ import annotations

import os
from typing import Optional

import torch


def select_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; any other name is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name!r} but no CUDA device is available")
    return device


def amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for `amp` (auto/bf16/fp16/off) on `device`, or None for full fp32."""
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        return torch.float16  # paired with a GradScaler by the trainer (CPU autocast supports it too)
    raise ValueError(f"train.amp must be auto, bf16, fp16 or off, got {amp!r}")


def describe_device(device: torch.device) -> str:
    """'NVIDIA H100 (79.1 GiB)' or 'CPU (2 threads)'."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.1f} GiB)"
    return f"CPU ({torch.get_num_threads()} threads of {os.cpu_count()} cores)"


def device_summary() -> str:
    """Description of the device 'auto' would pick, for status displays."""
    return describe_device(select_device("auto"))
