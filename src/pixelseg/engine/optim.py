"""Optimizer construction, seeding, and the gradient-norm step (clipping + finiteness)."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from ..config import RunConfig
from ..errors import PixelsegError
from .finetune import param_groups


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False


def make_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """The configured optimizer over ``finetune.param_groups`` (a pretrained encoder at its
    own lr scale; norms and biases without weight decay)."""
    t = cfg.train
    groups = param_groups(model, t)
    # torch's fused Adam was tried (bench/demo_time.py, 2 cores, alone): the demo's training
    # took 134 s against 128 s and its val mIoU fell from 0.907 to 0.886, so it stays off.
    if t.optimizer == "adam":
        return torch.optim.Adam(groups, lr=t.lr)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr)
    return torch.optim.SGD(groups, lr=t.lr, momentum=0.9)


def load_optimizer(optimizer: torch.optim.Optimizer, state_dict: dict) -> None:
    """``optimizer.load_state_dict``, then each state tensor laid out in memory as its
    parameter is. torch casts loaded state to the parameter's device and dtype but not its
    layout: a channels-last weight gets back its moments contiguous. The default Adam copes,
    but a fused kernel, which walks parameter and moments as flat memory, then pairs each
    weight with another weight's moments (a silently wrong step; torch 2.13's fused CPU Adam,
    tests/engine/test_optimizer_layout.py)."""
    optimizer.load_state_dict(state_dict)
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.dim() > 0:
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def resolve_batch_size(
    batch_size: int, global_batch_size: int | None, world_size: int, accumulate: int
) -> int:
    """Images per forward pass in each process (see TrainConfig.global_batch_size)."""
    if global_batch_size is None:
        return batch_size
    parts = world_size * accumulate
    if global_batch_size % parts:
        raise PixelsegError(
            f"train.global_batch_size={global_batch_size}: not divisible by {world_size} "
            f"process(es) x train.accumulate={accumulate}; choose a multiple of {parts}"
        )
    return global_batch_size // parts


def grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Global L2 norm of the gradients (before clipping); clips to ``max_norm`` when > 0.

    Computed every step even without clipping: after DDP's all-reduce it is identical on every
    rank and NaN if any rank's loss was, which makes it the cheap, rank-consistent NaN check.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if max_norm > 0:
        return nn.utils.clip_grad_norm_(params, max_norm)
    return nn.utils.get_total_norm(grads)
