"""torchrun support: a training process's start (process group from the environment torchrun
provides, device, threads) and finish, and the few collectives the trainer needs (broadcast
the run folder, reduce metrics, agree on NaN).

Without torchrun (no WORLD_SIZE), everything here is a no-op and rank 0 of 1 is assumed.
See docs/distributed.md for launching.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from ..errors import PixelsegError
from .device import configure_threads, pick_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1  # processes on this machine (CPU threads are split between them)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_world_size() -> int:
    """How many processes torchrun started (its WORLD_SIZE); 1 without torchrun."""
    return int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch (its RANK), or the only process: the one that writes the
    run-level files (plan, report) after training."""
    return int(os.environ.get("RANK", 0)) == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU)."""
    world = launched_world_size()
    if world <= 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        # Kept for the life of the process, not torn down after each fit(): a process may
        # train several runs (seeds, tuning trials), and re-creating the rendezvous store on
        # the same port is fragile. The CLI ends it with finish_process(); no atexit hook
        # (see there why a teardown during interpreter exit aborts).
        dist.init_process_group(backend=backend)
    return DistInfo(
        dist.get_rank(),
        local_rank,
        dist.get_world_size(),
        int(os.environ.get("LOCAL_WORLD_SIZE", world)),
    )


def start_process(device_name: str, threads: int = 0) -> tuple[DistInfo, torch.device, int]:
    """Where this process trains: its place in torchrun's group (joined here; rank 0 of 1
    without torchrun), its device (``train.device``; under torchrun, its own GPU) and its CPU
    threads (the cores split between this machine's processes). ``finish_process`` ends it.

    The device is picked twice: its type chooses the group's backend before the group says
    which local rank, and so which GPU, is this process's."""
    info = init_distributed(pick_device(device_name).type)
    device = pick_device(device_name, info.local_rank)
    return info, device, configure_threads(device, info.local_world_size, threads)


def finish_process(code: int, wait: bool = True) -> int:
    """End a torchrun worker: wait for every rank (``wait``, on the success path), destroy the
    process group, flush the output and leave with ``os._exit(code)``. Without torchrun it
    returns ``code``.

    Why not a plain return (or an atexit hook, as before): DistributedDataParallel keeps
    references to the gloo process group, so destroying it does not stop gloo's worker
    threads, and each still holds its last work item, whose captured thread-local state owns
    Python objects. If a worker releases one after the interpreter has begun finalising (a
    teardown from atexit wakes them up just then; on a busy machine they run late), its GIL
    request ends the thread with pthread_exit, whose forced unwind through a noexcept
    destructor calls std::terminate: "terminate called without an active exception",
    SIGABRT, and torchrun reports the finished job as failed. Every file is already written
    atomically and the group is destroyed while the interpreter is whole; ``os._exit`` then
    skips the finalisation those threads would race with.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return code
    try:
        if wait:
            dist.barrier()
        dist.destroy_process_group()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def broadcast_object(obj, info: DistInfo):
    """Rank 0's value of ``obj`` on every rank (e.g. the run folder it created)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_or_raise(value, error: str | None, info: DistInfo):
    """Rank 0 either made ``value`` or failed with ``error``; every rank returns the value or
    raises the same PixelsegError, so no rank is left waiting in a collective that never comes."""
    value, error = broadcast_object((value, error), info)
    if error is not None:
        raise PixelsegError(error)
    return value


def reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value)
        value /= info.world_size
    return value


def any_rank(flag: torch.Tensor, info: DistInfo) -> bool:
    """True on every rank when ``flag`` (a bool tensor) is true on any rank."""
    if info.enabled:
        flag = flag.to(torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def sync_buffers(model: nn.Module, info: DistInfo) -> None:
    """Make BatchNorm running statistics identical on every rank before evaluating/saving.

    DDP broadcasts rank 0's buffers at the start of each forward, but the last training step
    then updates each rank's copy from its own shard: without this, the ranks would evaluate
    slightly different models and rank 0 would save one the others never evaluated. Float
    buffers are averaged (a better estimate than any one rank's), the rest come from rank 0.
    """
    if not info.enabled:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf /= info.world_size
        else:
            dist.broadcast(buf, src=0)


def convert_sync_bn(
    model: nn.Module, wanted: bool, device: torch.device, info: DistInfo
) -> tuple[nn.Module, str]:
    """SyncBatchNorm when asked and possible; returns (model, a note for the log or "")."""
    if not wanted or not info.enabled:
        return model, ""
    if device.type != "cuda":
        # torch's SyncBatchNorm only runs on GPUs; keep per-process statistics on CPU.
        return model, (
            "train.sync_bn: SyncBatchNorm needs CUDA; each process normalises with its own batch"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model), ""


class ShardSampler(Sampler[int]):
    """Strided, padding-free shards for evaluation: rank r gets indices r, r+N, ...

    Unlike the training sampler it never repeats a sample to even out the shards, so the
    confusion matrices summed across ranks count every validation pixel exactly once.
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, n, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
