"""Model summary: per-layer output shapes and parameters, total MACs, peak activation memory.

``summarize(model, size=(H, W))`` runs one forward pass with forward hooks on every leaf
module. It registers no model (the models package imports every module in it).

>>> from pixelseg.models import create_model
>>> s = summarize(create_model("unet", 11, width=8, depth=3), size=(64, 96))
>>> print(s.table())  # doctest: +SKIP
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from math import prod
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["LayerRow", "ModelSummary", "count_module_macs", "summarize"]


@dataclass
class LayerRow:
    """One call of one leaf module during the forward pass."""

    name: str
    type: str
    output_shape: list[int]
    params: int
    macs: int


@dataclass
class ModelSummary:
    """What ``summarize`` measured. ``flops`` is ``2 * macs`` (one multiply + one add)."""

    input_shape: list[int]
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    macs: int = 0
    peak_activation_bytes: int | None = None
    memory_method: str = ""

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dictionary of everything, rows included."""
        d = asdict(self)
        d["flops"] = self.flops
        return d

    def table(self) -> str:
        """Aligned text table, one row per leaf-module call, then the totals."""
        header = ("layer", "type", "output shape", "params", "MACs")
        body = [
            (r.name, r.type, "x".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}")
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        # Text columns left-aligned, numbers right-aligned.
        align = ("<", "<", "<", ">", ">")

        def fmt(row: tuple[str, ...]) -> str:
            return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)).rstrip()

        rule = "-" * len(fmt(header))
        lines = [fmt(header), rule, *map(fmt, body), rule]
        mem = (
            "n/a"
            if self.peak_activation_bytes is None
            else f"{self.peak_activation_bytes / 2**20:,.1f} MiB"
        )
        lines += [
            f"input:                  {'x'.join(map(str, self.input_shape))}",
            f"total params:           {self.total_params:,}",
            f"trainable params:       {self.trainable_params:,}",
            f"MACs:                   {self.macs:,} ({self.macs / 1e9:.3f} G)",
            f"FLOPs (2 x MACs):       {self.flops / 1e9:.3f} G",
            f"peak activation memory: {mem}",
        ]
        if self.memory_method:
            lines.append(f"  ({self.memory_method})")
        return "\n".join(lines)


# --- MAC counting -------------------------------------------------------------------------------


def _conv_macs(m: nn.modules.conv._ConvNd, inputs: tuple, output: torch.Tensor) -> int:
    k = prod(m.kernel_size)
    if m.transposed:
        # Every input element is scattered through Cout/groups x k weights.
        x = inputs[0]
        return x.numel() * (m.out_channels // m.groups) * k
    # Every output element gathers Cin/groups x k inputs.
    return output.numel() * (m.in_channels // m.groups) * k


def _linear_macs(m: nn.Linear, inputs: tuple, output: torch.Tensor) -> int:
    return output.numel() * m.in_features


def _bilinear_macs(m: nn.Bilinear, inputs: tuple, output: torch.Tensor) -> int:
    return output.numel() * m.in1_features * m.in2_features


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _rnn_macs(m: nn.RNNBase, inputs: tuple, output: Any) -> int:
    """Matrix products of a (multi-layer, maybe bidirectional) RNN.

    Per time step, per direction, per layer: gates * (input_size * hidden + hidden * hidden),
    e.g. GRU 3 * (in*h + h*h), LSTM 4 * (...); with ``proj_size`` p the recurrent product is
    gates * p * h, plus p * h for the projection. Element-wise gate arithmetic is not counted
    (as for activations elsewhere).
    """
    x = inputs[0]
    if isinstance(x, nn.utils.rnn.PackedSequence):
        steps = x.data.shape[0]  # sum of sequence lengths over the batch
    else:
        steps = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
    gates = _GATES[m.mode]
    h = m.hidden_size
    p = getattr(m, "proj_size", 0) or 0
    rec = p or h
    dirs = 2 if m.bidirectional else 1
    total = 0
    for layer in range(m.num_layers):
        cin = m.input_size if layer == 0 else rec * dirs
        per_step = gates * (cin * h + rec * h) + (p * h if p else 0)
        total += per_step * dirs * steps
    return total


def _cell_macs(m: nn.RNNCellBase, inputs: tuple, output: Any) -> int:
    x = inputs[0]
    batch = x.shape[0] if x.dim() == 2 else 1
    gates = {nn.RNNCell: 1, nn.GRUCell: 3, nn.LSTMCell: 4}.get(type(m), 1)
    return batch * gates * (m.input_size * m.hidden_size + m.hidden_size * m.hidden_size)


_MAC_RULES: list[tuple[type, Callable[..., int]]] = [
    (nn.modules.conv._ConvNd, _conv_macs),
    (nn.Linear, _linear_macs),
    (nn.Bilinear, _bilinear_macs),
    (nn.RNNBase, _rnn_macs),
    (nn.RNNCellBase, _cell_macs),
]


def count_module_macs(module: nn.Module, inputs: tuple, output: Any) -> int:
    """MACs of one call of a leaf module, from its type and the call's tensor shapes.

    Counted: convolutions (incl. transposed, grouped, dilated), linear and bilinear layers, and
    RNN/GRU/LSTM (incl. cells). Not counted: normalisation, activations, pooling, interpolation,
    element-wise arithmetic, and any matmul written directly in a ``forward`` (hooks cannot see
    it) -- these are cheap next to the counted products in the models of this package.
    """
    for cls, rule in _MAC_RULES:
        if isinstance(module, cls):
            return int(rule(module, inputs, output))
    return 0


# --- peak activation memory -------------------------------------------------------------------


class _LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of tensor storages created by aten ops while the mode is active.

    Every op's outputs are seen at the dispatcher, so the intermediate tensors of composite ops
    (e.g. each time step of a CPU GRU) are counted too. A storage is counted once however many
    views share it, and released when its last reference dies (a weakref finalizer on the
    storage, which PyTorch keeps alive as long as any tensor -- including one saved by autograd
    for backward -- uses it). Storages that existed before (parameters, buffers, the input)
    are excluded.
    """

    def __init__(self, exclude: set[int]) -> None:
        super().__init__()
        self.exclude = exclude
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self.exclude or key in self.live:
            return
        nbytes = storage.nbytes()
        self.live[key] = nbytes
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)


# --- summarize ------------------------------------------------------------------------------------


def summarize(
    model: nn.Module,
    size: tuple[int, int] = (360, 480),
    in_channels: int = 3,
    batch_size: int = 1,
    measure_memory: bool = True,
) -> ModelSummary:
    """Summarise ``model`` with one forward pass of a zero batch of ``size`` (H, W).

    Rows: one per call of each leaf module (a module called twice gives two rows), with its
    output shape (first tensor output), its own parameters and the call's MACs (see
    ``count_module_macs``). Totals: parameters counted once each, from ``model.parameters()``.

    Peak activation memory is *measured*: the forward runs under a dispatch mode that adds up
    the bytes of every tensor storage created by an aten op and subtracts them when the storage
    is freed, keeping the maximum. The pass runs in eval mode with autograd recording (when
    any parameter requires grad), so the peak includes the activations saved for backward --
    the memory a training step holds at the end of its forward (train-mode dropout masks and
    batch statistics would add a little). Not included: parameters, the input, gradients,
    optimizer state and scratch space internal to a kernel (im2col, oneDNN workspaces).

    The model may live on the ``meta`` device: shapes, MACs and the memory estimate are then
    computed without any arithmetic (fast at any size), e.g.
    ``with torch.device("meta"): m = create_model("unet", 11)``.
    The model's train/eval flags are restored afterwards; batch-norm statistics are untouched
    (eval mode).
    """
    h, w = size
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(batch_size, in_channels, h, w, device=device, dtype=dtype)

    names = {m: n or "(model)" for n, m in model.named_modules()}
    rows: list[LayerRow] = []

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        first = next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)
        rows.append(
            LayerRow(
                name=names.get(module, "?"),
                type=type(module).__name__,
                output_shape=list(first.shape) if first is not None else [],
                params=sum(p.numel() for p in module.parameters(recurse=False)),
                macs=count_module_macs(module, inputs, output),
            )
        )

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    modes = {m: m.training for m in model.modules()}
    exclude = {t.untyped_storage()._cdata for t in [x, *model.parameters(), *model.buffers()]}
    tracker = _LiveTensorBytes(exclude) if measure_memory else None
    grad = any(p.requires_grad for p in model.parameters())
    try:
        model.eval()
        with torch.autograd.set_grad_enabled(grad):
            if tracker is not None:
                with tracker:
                    out = model(x)
                del out  # release the graph before leaving, so finalizers run now
            else:
                model(x)
    finally:
        for hdl in handles:
            hdl.remove()
        for m, training in modes.items():
            m.training = training

    params = list({id(p): p for p in model.parameters()}.values())
    return ModelSummary(
        input_shape=list(x.shape),
        rows=rows,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        macs=sum(r.macs for r in rows),
        peak_activation_bytes=tracker.peak if tracker is not None else None,
        memory_method=(
            "live tensor storages during a forward with autograd recording, eval mode"
            + (", meta device (computed, not allocated)" if device.type == "meta" else "")
            if tracker is not None
            else ""
        ),
    )
