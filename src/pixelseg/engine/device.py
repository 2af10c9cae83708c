"""Device choice and precision: bf16 autocast on CUDA only (bf16 on CPUs without AVX-512 is
hundreds of times slower than fp32), channels_last on CUDA, CPU threads from the cores we have."""

from __future__ import annotations

import contextlib
import os

import torch

from ..errors import PixelsegError


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PixelsegError(f"train.device={name}: CUDA is not available on this machine")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise PixelsegError("train.device=mps: MPS is not available on this machine")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise PixelsegError(f"train.device={name}: expected auto, cpu, cuda[:N] or mps")
    return torch.device(name)


def configure_threads(device: torch.device, world_size: int = 1) -> None:
    """On CPU use every core we were given, split between local processes."""
    if device.type == "cpu":
        torch.set_num_threads(max(1, available_cores() // max(1, world_size)))


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format
