"""Multi-process training: one run on several devices through torchrun's launcher and DistributedDataParallel.

`launch(run_dir, nproc)` starts `nproc` processes with torch.distributed.run's launcher API (what the
`torchrun` command uses: a c10d rendezvous on localhost, no restarts) and waits. Each process runs
`python -m fer.training.rank RUN`: it joins the process group (NCCL on CUDA, gloo on the CPU), takes
GPU `local_rank` (the worker pins the job's GPUs with CUDA_VISIBLE_DEVICES) and trains its shard;
only rank 0 writes the run folder. When a process fails, the launcher records which rank and why
in status.json, so a crash of any rank fails the run with that rank's error.
"""
from __future__ import annotations

import os
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from fer.core.files import utc_now
from fer.runs.writer import write_status


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job: rank, world size, and the device it trains on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run folder."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether a process group is in use (more than one process)."""
        return self.world > 1

    def device(self, device: torch.device) -> torch.device:
        """This process's device: its own GPU on CUDA, the CPU otherwise."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def sum(self, values: List[float]) -> List[float]:
        """`values` summed over every process (as given when there is one process)."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def from_main(self, values: List[float]) -> List[float]:
        """Rank 0's `values`, on every process (e.g. the validation accuracy that picks checkpoints)."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.broadcast(tensor, src=0)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on any (a cancel request seen by rank 0 stops them all)."""
        return bool(self.sum([1.0 if flag else 0.0])[0]) if self.active else flag

    def barrier(self) -> None:
        """Wait for every process."""
        if self.active:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")


def context_from_env() -> DistContext:
    """The process's place in a job started by torchrun (RANK, WORLD_SIZE, LOCAL_RANK), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    return DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(ctx: DistContext, device: torch.device) -> None:
    """Join the job's process group: NCCL between GPUs, gloo between CPU processes."""
    if ctx.active and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def close_process_group() -> None:
    """Leave the process group (after the last collective)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _failure_message(rank: int, failure) -> str:
    message = failure.message
    if isinstance(message, dict):  # the error file written by @record: the exception's own message
        message = message.get("message", message)
    if failure.exitcode < 0:
        return f"rank {rank} was killed by {failure.signal_name()}"
    return f"rank {rank}: {message}" if message else f"rank {rank} exited with code {failure.exitcode}"


@contextmanager
def _threads_shared_out(nproc: int) -> Iterator[None]:
    """Give each of `nproc` processes its share of the CPU threads (as torchrun does), unless the user chose."""
    if "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    try:
        yield
    finally:
        del os.environ["OMP_NUM_THREADS"]


def launch(run_dir: Path, nproc: int) -> int:
    """Train the run at `run_dir` in `nproc` processes (torchrun's launcher); 0 when every rank succeeded."""
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5,
                          start_method="spawn")
    try:
        with _threads_shared_out(nproc):
            elastic_launch(config, sys.executable)("-m", "fer.training.rank", str(run_dir))
    except ChildFailedError as e:
        # Whatever rank 0 wrote last (it may have stopped because another rank died), the run failed there.
        errors = "; ".join(_failure_message(rank, f) for rank, f in sorted(e.failures.items()))
        write_status(Path(run_dir), "failed", error=errors, finished_at=utc_now())
        return 1
    return 0
