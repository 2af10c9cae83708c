"""One registry for every model: build by name, list with knobs and defaults.

A model is a ``nn.Module`` class whose ``__init__(self, num_classes, in_channels=3, *, knob=...)``
keyword arguments are its knobs. Register it with ``@register_model("name", "one line",
knobs=[Knob(...), ...])``: each knob is declared once there (type, default, valid values, help,
tuning range; see ``knobs.py``), and the declaration must name exactly the constructor's
keyword arguments with the same defaults (checked when the model registers).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import PixelsegError
from .knobs import Knob, check_knob


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # "cnn" or "rnn"
    description: str
    cls: type[nn.Module]
    declared: tuple[Knob, ...] = ()

    def knobs(self) -> dict[str, Any]:
        """Knob name -> default."""
        return {k.name: k.default for k in self.declared}

    def knob_types(self) -> dict[str, Any]:
        """Knob name -> its declared type."""
        return {k.name: k.type for k in self.declared}

    def knob(self, name: str) -> Knob:
        """The declaration of knob ``name``; a PixelsegError naming it when there is none."""
        for k in self.declared:
            if k.name == name:
                return k
        raise PixelsegError(
            f"model.{name}: not a knob of {self.name!r}; its knobs are "
            f"{', '.join(self.knobs()) or '(none)'}"
        )


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, family: str = "cnn", knobs: Iterable[Knob] = ()):
    """Class decorator adding a model with its declared ``knobs`` to the registry; a
    duplicate name, or knobs that are not the constructor's, are an error."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        declared = tuple(knobs)
        _check_declaration(name, cls, declared)
        _REGISTRY[name] = ModelEntry(name, family, description, cls, declared)
        return cls

    return wrap


def list_models() -> list[ModelEntry]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise PixelsegError(
            f"model: unknown model {name!r}; choose from {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def create_model(
    name: str, num_classes: int, in_channels: int = 3, *, load_weights: bool = True, **knobs: Any
) -> nn.Module:
    """Build a registered model. Unknown knobs are an error naming the knob.

    A model with a pretrained encoder (``encoder=efficientnet_lite0``, ``pretrained`` not
    ``none``) gets its weights here, after construction (a model never reads files), and
    ``model.pixelseg_pretrained`` records what was loaded; ``load_weights=False`` skips that,
    for a model whose weights come from a checkpoint next or that is only timed or summarised.

    >>> m = create_model("unet", num_classes=6, depth=3, activation="gelu")
    """
    from .encoders.pretrained import load_pretrained

    entry = get_entry(name)
    knobs = {key: check_knob(name, entry.knob(key), value) for key, value in knobs.items()}
    try:
        model = entry.cls(num_classes, in_channels, **knobs)
    except (ValueError, TypeError) as e:
        raise PixelsegError(f"model {name!r}: {e}") from None
    except RuntimeError as e:  # torch refusing a layer, e.g. a negative width
        shown = ", ".join(f"{k}={v}" for k, v in knobs.items()) or "the defaults"
        raise PixelsegError(
            f"model {name!r}: knobs {shown} do not make a valid model ({e})"
        ) from None
    model.pixelseg_pretrained = load_pretrained(model) if load_weights else None
    # Everything needed to rebuild the model, stored in checkpoints.
    model.pixelseg_spec = {
        "name": name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "knobs": {**entry.knobs(), **knobs},
    }
    return model


def constructor_knobs(cls: type[nn.Module]) -> dict[str, Any]:
    """Knob name -> default, as the constructor's keyword arguments have them."""
    sig = inspect.signature(cls.__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name not in ("self", "num_classes", "in_channels")
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def _check_declaration(name: str, cls: type[nn.Module], declared: tuple[Knob, ...]) -> None:
    """The declared knobs are the constructor's keyword arguments, with the same defaults,
    and each default is valid: a declaration that drifted from the code fails at import."""
    names = [k.name for k in declared]
    if len(set(names)) != len(names):
        raise ValueError(f"model {name!r}: a knob is declared twice in {names}")
    in_code = constructor_knobs(cls)
    if set(names) != set(in_code):
        raise ValueError(
            f"model {name!r}: declared knobs {sorted(names)} are not the constructor's "
            f"{sorted(in_code)}"
        )
    for k in declared:
        if k.default != in_code[k.name]:
            raise ValueError(
                f"model {name!r}: knob {k.name} declares default {k.default!r}, "
                f"the constructor has {in_code[k.name]!r}"
            )
        try:
            k.check(k.default)
        except ValueError as e:
            raise ValueError(f"model {name!r}: knob {k.name}'s default is not valid: {e}") from None
