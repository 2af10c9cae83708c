"""Shared by the model tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny tensors run fastest on one thread, and on a shared 2-core machine a second OpenMP
    # thread that gets descheduled makes every op wait at its barrier (100x slowdowns seen).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
