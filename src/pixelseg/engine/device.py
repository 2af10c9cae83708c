"""Device choice and precision: bf16 autocast on CUDA only (bf16 on CPUs without AVX-512 is
hundreds of times slower than fp32), channels_last on every device (measured faster on the CPU
too), CPU threads from the cores we have, and opt-in ``torch.compile``."""

from __future__ import annotations

import contextlib
import os

import torch
from torch import nn

from ..data.parallel import available_cores
from ..errors import PixelsegError


def pick_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """The device named in ``train.device``. Under torchrun a bare ``cuda`` means this
    process's GPU (``LOCAL_RANK``), so N processes never pile onto cuda:0."""
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PixelsegError(f"train.device={name}: CUDA is not available on this machine")
    has_mps = getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    if name == "mps" and not has_mps:
        raise PixelsegError("train.device=mps: MPS is not available on this machine")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise PixelsegError(f"train.device={name}: expected auto, cpu, cuda[:N] or mps")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def configure_threads(device: torch.device, local_processes: int = 1, threads: int = 0) -> int:
    """On CPU use every core we were given, split between the processes of this machine
    (oversubscribed OpenMP threads wait at each other's barriers). Returns the thread count."""
    if device.type != "cpu":
        return torch.get_num_threads()
    n = threads or max(1, available_cores() // max(1, local_processes))
    torch.set_num_threads(n)
    return n


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on every device: on GPUs for the tensor cores, and on the CPU because
    oneDNN's convolutions are faster in NHWC. Measured on 2 cores (torch 2.13, train step of
    batch 4, fwd + bwd + Adam): lightseg 360x480 311-324 ms -> 191-279 ms, unet 180x240
    344 -> 255 ms, reseg 180x240 399 -> 378 ms."""
    del device  # kept in the signature: the choice is per device, even if it agrees today
    return torch.channels_last


def augment_on_device(setting: str | bool, device: torch.device) -> bool:
    """Resolve ``augment.on_device``: "auto" batches augmentation on GPUs only. On a CPU the
    two paths cost about the same (bench/train_speed.py, 2 cores, batch of 2 at 360x480:
    16.0 ms per sample vs 12.6 ms batched, under 0.2% of a U-Net step, and the order has
    flipped between runs), so the CPU keeps the per-sample path, whose random draws are
    seeded per image and so identical whatever the number of processes."""
    if isinstance(setting, bool):
        return setting
    return device.type == "cuda"


def maybe_compile(model: nn.Module, enabled: bool, backend: str = "inductor") -> nn.Module:
    """``torch.compile(model)`` when asked, else the model itself.

    Compilation is lazy: errors (no C++ compiler, an unsupported op) surface at the first
    forward, where the trainer falls back to eager (see ``Trainer``).
    """
    if not enabled:
        return model
    if not hasattr(torch, "compile"):
        raise PixelsegError("train.compile=true: this torch has no torch.compile (needs >= 2.0)")
    return torch.compile(model, backend=backend)
