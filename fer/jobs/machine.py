"""What this machine has for training: its GPUs (and how busy they are), its CPU and memory.

GPUs are read through NVML (`nvidia-ml-py`, the `gpu` extra) or, without it, `nvidia-smi`; neither
imports PyTorch, so the job worker stays quick to start. CUDA_VISIBLE_DEVICES is respected, the way
CUDA itself reads it. CPU and memory come from `psutil`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import List, Optional

import psutil


@dataclass
class GpuStats:
    index: str  # the id CUDA_VISIBLE_DEVICES takes
    name: str
    memory_used_mib: float
    memory_total_mib: float
    utilisation_pct: float


def _nvml_stats() -> Optional[List[GpuStats]]:
    try:
        import pynvml  # the nvidia-ml-py package: optional, only useful where there is an NVIDIA driver
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            out.append(GpuStats(str(i), name.decode() if isinstance(name, bytes) else name, memory.used / 2**20,
                                memory.total / 2**20, float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)))
        return out
    finally:
        pynvml.nvmlShutdown()


def _nvidia_smi_stats() -> List[GpuStats]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        text = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.used,memory.total,utilization.gpu",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    out = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 5:
            try:
                out.append(GpuStats(parts[0], parts[1], float(parts[2]), float(parts[3]), float(parts[4])))
            except ValueError:
                continue
    return out


def gpu_stats() -> List[GpuStats]:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES applied), with memory and utilisation."""
    stats = _nvml_stats()
    if stats is None:
        stats = _nvidia_smi_stats()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        stats = [s for s in stats if s.index in wanted]
    return stats


def visible_gpus() -> List[str]:
    """The ids of the GPUs jobs may be pinned to (CUDA_VISIBLE_DEVICES values); empty on a CPU-only machine."""
    return [g.index for g in gpu_stats()]


@dataclass
class CpuStats:
    cores: int
    utilisation_pct: float
    memory_used_gib: float
    memory_total_gib: float


def cpu_stats() -> CpuStats:
    """Cores, CPU use (over the last call's interval) and memory."""
    memory = psutil.virtual_memory()
    return CpuStats(os.cpu_count() or 1, psutil.cpu_percent(interval=None), (memory.total - memory.available) / 2**30,
                    memory.total / 2**30)


def machine_summary() -> str:
    """What jobs here train on, in a few words, without importing PyTorch (the dashboard's sidebar)."""
    gpus = gpu_stats()
    cores = os.cpu_count() or 1
    if not gpus:
        return f"CPU, {cores} cores (no GPU)"
    names = sorted({g.name for g in gpus})
    return f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({', '.join(names)}), {cores} CPU cores"
