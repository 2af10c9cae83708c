"""One registry for every model: build by name, list with knobs and defaults.

A model is a ``nn.Module`` class whose ``__init__(self, num_classes, in_channels=3, *, knob=...)``
keyword arguments are its knobs. Register it with ``@register_model("name", "one line")``.
"""

from __future__ import annotations

import inspect
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import PixelsegError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # "cnn" or "rnn"
    description: str
    cls: type[nn.Module]

    def knobs(self) -> dict[str, Any]:
        """Knob name -> default, from the constructor's keyword arguments."""
        sig = inspect.signature(self.cls.__init__)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.name not in ("self", "num_classes", "in_channels")
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    def knob_types(self) -> dict[str, Any]:
        """Knob name -> its declared type (the constructor's annotation; the default's type
        where there is none)."""
        hints = typing.get_type_hints(self.cls.__init__)
        return {
            k: hints.get(k, Any if default is None else type(default))
            for k, default in self.knobs().items()
        }


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, family: str = "cnn"):
    """Class decorator adding a model to the registry; a duplicate name is an error."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, family, description, cls)
        return cls

    return wrap


def list_models() -> list[ModelEntry]:
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise PixelsegError(
            f"model: unknown model {name!r}; choose from {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def create_model(name: str, num_classes: int, in_channels: int = 3, **knobs: Any) -> nn.Module:
    """Build a registered model. Unknown knobs are an error naming the knob.

    >>> m = create_model("unet", num_classes=6, depth=3, activation="gelu")
    """
    entry = get_entry(name)
    allowed = entry.knobs()
    for key in knobs:
        if key not in allowed:
            raise PixelsegError(
                f"model.{key}: not a knob of {name!r}; its knobs are {', '.join(allowed)}"
            )
    types_ = entry.knob_types()
    knobs = {key: check_knob(name, key, value, types_[key]) for key, value in knobs.items()}
    try:
        model = entry.cls(num_classes, in_channels, **knobs)
    except (ValueError, TypeError) as e:
        raise PixelsegError(f"model {name!r}: {e}") from None
    except RuntimeError as e:  # torch refusing a layer, e.g. a negative width
        shown = ", ".join(f"{k}={v}" for k, v in knobs.items()) or "the defaults"
        raise PixelsegError(
            f"model {name!r}: knobs {shown} do not make a valid model ({e})"
        ) from None
    # Everything needed to rebuild the model, stored in checkpoints.
    model.pixelseg_spec = {
        "name": name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "knobs": {**allowed, **knobs},
    }
    return model


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
        return isinstance(value, numbers.Integral), int(value) if isinstance(
            value, numbers.Integral
        ) else value
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


def check_knob(model: str, key: str, value: Any, tp: Any) -> Any:
    """``value`` as knob ``key`` of ``model`` takes it, or a PixelsegError naming the key and
    the type it expects."""
    ok, fitted = _conform(value, tp)
    if not ok:
        raise PixelsegError(
            f"model.{key}: expected {_type_words(tp)}, got {value!r} (a knob of {model!r}; "
            "see `pixelseg models`)"
        )
    return fitted


def _ensure_loaded() -> None:
    # Importing the package imports every model module (see models/__init__.py).
    from . import _load_all  # noqa: F401
