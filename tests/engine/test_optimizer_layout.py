"""Optimizer state restored with its parameter's memory layout: the fused Adam kernel walks a
parameter and its moments as flat memory, so a channels-last weight restored with contiguous
moments would be stepped with another weight's moments."""

from __future__ import annotations

import copy

import pytest
import torch

from pixelseg.engine.optim import load_optimizer


def _train(resume_at: int | None, fused: bool) -> torch.Tensor:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(conv.parameters(), lr=1e-2, fused=fused)
    g = torch.Generator().manual_seed(1)
    for step in range(6):
        if step == resume_at:  # as a checkpoint stores it: every tensor contiguous
            saved = opt.state_dict()
            state = {
                i: {k: v.contiguous().clone() for k, v in s.items()}
                for i, s in saved["state"].items()
            }
            weights = copy.deepcopy(conv.state_dict())
            conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
            conv.load_state_dict(weights)
            opt = torch.optim.Adam(conv.parameters(), lr=1e-2, fused=fused)
            load_optimizer(opt, {"state": state, "param_groups": saved["param_groups"]})
        opt.zero_grad()
        conv(torch.randn(2, 3, 8, 8, generator=g)).pow(2).sum().backward()
        opt.step()
    return conv.weight.detach().clone()


@pytest.mark.parametrize("fused", [False, True])
def test_a_resumed_channels_last_model_steps_as_if_never_stopped(fused):
    assert torch.equal(_train(None, fused), _train(3, fused))


def test_restored_moments_have_their_parameters_layout():
    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(conv.parameters(), fused=True)
    conv(torch.randn(1, 3, 5, 5)).sum().backward()
    opt.step()
    saved = opt.state_dict()
    saved["state"] = {
        i: {k: v.contiguous() for k, v in s.items()} for i, s in saved["state"].items()
    }
    load_optimizer(opt, saved)
    moments = opt.state[conv.weight]["exp_avg"]
    assert moments.stride() == conv.weight.stride()
