"""Model knobs, each declared once: type, default, valid values, help and the tuner's range.

A model lists its knobs at registration (``@register_model(..., knobs=[...])``); validation in
``create_model``, ``pixelseg models``, ``pixelseg summary`` and the default search space of
``pixelseg tune`` all read that one declaration.

    Knob("depth", int, 4, low=1, search={"low": 2, "high": 4}, help="resolution levels")

Knobs that several models share (activation, norm, kernel size, ...) are declared here, once;
a model with another default takes ``WIDTH.but(default=16)``. The recurrent family's
(``CELL``, ``HIDDEN_SIZE``, ``NUM_LAYERS``) are in ``renet.py``, beside ``CELLS``.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any

from ..errors import PixelsegError
from .encoders import ENCODER_CHOICES, NATIVE
from .layers import ACTIVATIONS, DECODER_STRIDES, NORMS


@dataclass(frozen=True)
class Knob:
    """One model knob.

    ``type``: int, float, str, bool, ``tuple[int, ...]`` (a list on the command line; one
    item is taken as a list of one), or a union with None. Valid values are ``choices``, or
    the range ``low``..``high`` (inclusive; ``high_open`` excludes ``high``), with ``odd`` for
    odd integers only; for a list knob every item is checked and the list must not be empty.

    ``search`` is the distribution ``pixelseg tune`` searches by default, written as in a
    ``--space`` file (a list of choices or ``{"low": .., "high": ..}``); ``True`` searches all
    ``choices``; None leaves the knob at its default. It is declared apart from the valid
    values because the two differ: any width >= 1 is valid, [8, 16, 32] is worth trying.
    """

    name: str
    type: Any
    default: Any
    help: str = ""
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    odd: bool = False
    search: Any = None

    def __post_init__(self) -> None:
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.search is True and self.choices is None:
            raise ValueError(f"knob {self.name}: search=True needs choices")

    def but(self, **changes: Any) -> Knob:
        """This knob with some fields changed (another default, another help)."""
        return dataclasses.replace(self, **changes)

    def search_space(self) -> Any:
        """The default search distribution in ``--space`` form, or None (not searched)."""
        return list(self.choices) if self.search is True else self.search

    def type_text(self) -> str:
        return _type_words(self.type)

    def valid_text(self) -> str:
        """The valid values in a few words: ``one of relu, gelu``, ``>= 1``, ``in [0, 1)``."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        parts = ["odd"] if self.odd else []
        if self.range_text():
            parts.append(self.range_text())
        return ", ".join(parts) or "any"

    def range_text(self) -> str:
        """``in [0, 1)``, ``>= 1``, ``<= 8``, or "" without bounds."""
        if self.low is not None and self.high is not None:
            return f"in [{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f">= {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return ""

    def check(self, value: Any) -> Any:
        """``value`` as this knob takes it (``"3e-4"`` -> 3e-4), or a ValueError saying what
        is wrong with it (the caller names the key and the model)."""
        ok, fitted = _conform(value, self.type)
        if not ok:
            raise ValueError(f"expected {_type_words(self.type)}, got {value!r}")
        if fitted is None:
            return fitted
        if _is_sequence_type(self.type) and isinstance(fitted, (list, tuple)):
            if not fitted:
                raise ValueError("must not be empty")
            for item in fitted:
                self._check_one(item, f" (item of {list(fitted)})")
        else:
            self._check_one(fitted, "")
        return fitted

    def _check_one(self, v: Any, where: str) -> None:
        if self.choices is not None:
            if v not in self.choices:
                raise ValueError(f"must be {self.valid_text()}, got {v!r}{where}")
            return
        low_ok = self.low is None or v >= self.low
        high_ok = self.high is None or (v < self.high if self.high_open else v <= self.high)
        if not (low_ok and high_ok) or (self.odd and v % 2 == 0):
            raise ValueError(f"must be {self.valid_text()}, got {v!r}{where}")


# --- knobs several models share -------------------------------------------------------------

WIDTH = Knob(
    "width",
    int,
    32,
    low=1,
    search=[8, 16, 32],
    help="base channel count; every layer scales with it",
)
KERNEL_SIZE = Knob(
    "kernel_size", int, 3, low=1, odd=True, search=[3, 5], help="spatial kernel of the convs"
)
ACTIVATION = Knob(
    "activation",
    str,
    "relu",
    choices=tuple(ACTIVATIONS),
    search=["relu", "gelu", "silu"],
    help="nonlinearity after every norm",
)
NORM = Knob("norm", str, "batch", choices=NORMS, help="normalisation after every conv")
DROPOUT = Knob("dropout", float, 0.0, low=0.0, high=1.0, high_open=True, help="dropout rate")
DECODER_STRIDE = Knob(
    "decoder_stride",
    int,
    4,
    choices=DECODER_STRIDES,
    help="stride the classifier works at: 2 and 1 add skips from the stem and the image",
)
CONTEXTS = ("none", "renet")
CONTEXT = Knob(
    "context",
    str,
    "none",
    choices=CONTEXTS,
    help="renet: recurrent global context (ReNet row/column sweeps) on the deepest features",
)
ENCODER = Knob(
    "encoder",
    str,
    NATIVE,
    choices=ENCODER_CHOICES,
    search=[NATIVE, "efficientnet_lite0"],  # lite0's weights come with pixelseg
    help="feature extractor: native (the model's own, from scratch) or an ImageNet-pretrained "
    "EfficientNet-Lite (see `pixelseg models`)",
)
PRETRAINED = Knob(
    "pretrained",
    str,
    "imagenet",
    help="encoder weights: imagenet, none (random) or the path of a state dict "
    "(.safetensors or weights-only .pth) in the encoder's key names; native has none",
)
# The recurrent family's shared knobs (cell, hidden_size, num_layers) are in renet.py.


# --- types -----------------------------------------------------------------------------------


def _is_sequence_type(tp: Any) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_is_sequence_type(a) for a in typing.get_args(tp))
    return typing.get_origin(tp) in (tuple, list)


def _conform(value: Any, tp: Any) -> tuple[bool, Any]:
    """(does ``value`` fit type ``tp``, the value to use): ints pass as floats, "3e-4" (YAML
    1.1 reads it as a string) as a float, a single item where a tuple of them is declared."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, fitted = _conform(value, arg)
            if ok:
                return True, fitted
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if isinstance(value, bool):  # bool is an int subclass: not a number here
        return False, value
    if tp is int:
        if isinstance(value, numbers.Integral):
            return True, int(value)
        return False, value
    if tp is float:
        if isinstance(value, numbers.Real):
            return True, float(value)
        try:
            return isinstance(value, str), float(value)
        except (TypeError, ValueError):
            return False, value
    if tp is str:
        return isinstance(value, str), value
    if origin in (tuple, list) and args:
        item = args[0]
        items = value if isinstance(value, (list, tuple)) else [value]
        return all(_conform(v, item)[0] for v in items), value
    return True, value  # other annotations are left to the model


def _type_words(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_words(a) for a in args)
    if origin in (tuple, list) and args:
        return f"a list of {_type_words(args[0]).split(' ', 1)[-1]}s"
    words = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return words.get(tp, "none" if tp is type(None) else getattr(tp, "__name__", str(tp)))


def check_knob(model: str, knob: Knob, value: Any) -> Any:
    """``value`` as ``knob`` of ``model`` takes it, or a PixelsegError naming the key."""
    try:
        return knob.check(value)
    except ValueError as e:
        raise PixelsegError(
            f"model.{knob.name}: {e} (a knob of {model!r}; see `pixelseg models`)"
        ) from None
