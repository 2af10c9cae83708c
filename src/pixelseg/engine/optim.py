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
    if t.optimizer in ("adam", "adamw"):
        adam = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
        return adam(groups, lr=t.lr, fused=fused_adam(model))
    return torch.optim.SGD(groups, lr=t.lr, momentum=0.9)


def fused_adam(model: nn.Module) -> bool:
    """Whether to use torch's fused Adam: one kernel over all the tensors instead of about
    eight small ops per tensor, which on a small model is a step's visible overhead (the demo's
    U-Net, 44 tensors, 1 CPU thread: 1.8-2.2 ms -> 0.5-0.6 ms a step, 2000 steps a demo).
    Its kernels exist for CPU and CUDA float parameters."""
    params = list(model.parameters())
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64)
        for p in params
    )


def load_optimizer(optimizer: torch.optim.Optimizer, state_dict: dict) -> None:
    """``optimizer.load_state_dict``, then each state tensor laid out in memory as its
    parameter is. torch casts loaded state to the parameter's device and dtype but not its
    layout: a channels-last weight gets back its moments contiguous, and the fused Adam kernel,
    which walks parameter and moments as flat memory, then pairs each weight with another
    weight's moments (a silently wrong step; checked on torch 2.13)."""
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
