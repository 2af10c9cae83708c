"""One registry for every model: build by name, list with knobs and defaults.

A model is a ``nn.Module`` class whose ``__init__(self, num_classes, in_channels=3, *, knob=...)``
keyword arguments are its knobs. Register it with ``@register_model("name", "one line")``.
"""

from __future__ import annotations

import inspect
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
    try:
        model = entry.cls(num_classes, in_channels, **knobs)
    except (ValueError, TypeError) as e:
        raise PixelsegError(f"model {name!r}: {e}") from None
    # Everything needed to rebuild the model, stored in checkpoints.
    model.pixelseg_spec = {
        "name": name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "knobs": {**allowed, **knobs},
    }
    return model


def _ensure_loaded() -> None:
    # Importing the package imports every model module (see models/__init__.py).
    from . import _load_all  # noqa: F401
