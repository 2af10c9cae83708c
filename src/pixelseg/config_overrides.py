"""``key=value`` overrides as one typed value: read once from the user's text, then passed on,
combined, flattened and applied as typed values (``config.apply_overrides``).

    user = Overrides.parse(["train.lr=3e-4", "model.depth=3"])   # the user's syntax
    flags = Overrides.of({"data.root": "data/", "train.epochs": 5})  # typed values as they are
    (flags + user).flat()     # {"data.root": "data/", "train.epochs": 5, "train.lr": ..., ...}
    (flags + user).format()   # ["data.root=data/", "train.epochs=5", "train.lr=3e-4", ...]
    Overrides.command_line({"data.root": "data/"}, ["train.lr=3e-4"])  # flags + user, in one

Later pairs win over earlier ones, as on the command line. An ``Overrides`` iterates as its
``key=value`` text, so it goes wherever a list of override strings went.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import PixelsegError


@dataclass(frozen=True)
class Overrides:
    """Ordered (dotted key, typed value) pairs; a value may itself be a mapping of sub-keys."""

    pairs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Overrides:
        """``["train.lr=3e-4", "data.resize=[64, 64]"]``: each value read as YAML."""
        pairs = []
        for text in texts:
            if "=" not in text:
                raise PixelsegError(f"{text}: overrides are key=value, e.g. train.epochs=20")
            key, raw = text.split("=", 1)
            try:
                value = yaml.safe_load(raw) if raw != "" else ""
            except yaml.YAMLError:
                value = raw  # not YAML: the text itself (a type check names the key later)
            pairs.append((key.strip(), value))
        return cls(tuple(pairs))

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Overrides:
        """Typed values, taken as they are: nothing is read from text."""
        return cls(tuple(values.items()))

    @classmethod
    def command_line(cls, flags: Mapping[str, Any], texts: Iterable[str]) -> Overrides:
        """A command's overrides, in one: its named flags' typed values by configuration key
        (argparse's, taken as they are; None is a flag not given, left out), then the user's
        free-form ``key=value`` texts (parsed here, once), which win."""
        given = tuple((key, value) for key, value in flags.items() if value is not None)
        return cls(given + cls.parse(texts).pairs)

    def __add__(self, other: Overrides) -> Overrides:
        return Overrides(self.pairs + other.pairs)

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.format())

    def keys(self) -> set[str]:
        """Every key set, flattened (``model={name: unet}`` sets ``model.name``)."""
        return set(self.flat())

    def without(self, keys: Iterable[str]) -> Overrides:
        drop = set(keys)
        return Overrides(tuple((k, v) for k, v in self.pairs if k not in drop))

    def nested(self) -> dict:
        """``{"train": {"lr": ...}, "model": {"depth": 3}}``, the shape of a YAML file."""
        nested: dict = {}
        for key, value in self.pairs:
            node = nested
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise PixelsegError(f"{key}: conflicts with an earlier override")
            node[parts[-1]] = value
        return nested

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value, the last setting of each key (mappings walked into keys)."""
        out: dict[str, Any] = {}

        def walk(node: dict, prefix: str) -> None:
            for k, v in node.items():
                if isinstance(v, dict):
                    walk(v, f"{prefix}{k}.")
                else:
                    out[f"{prefix}{k}"] = v

        walk(self.nested(), "")
        return out

    def format(self) -> list[str]:
        """As ``key=value`` text that ``parse`` reads back to the same values."""
        return [f"{key}={format_value(value)}" for key, value in self.pairs]


def as_overrides(given: Overrides | Sequence[str] | None) -> Overrides:
    """An ``Overrides`` as it is; ``key=value`` strings parsed (once, here)."""
    if isinstance(given, Overrides):
        return given
    return Overrides.parse(given) if given else Overrides()


def format_value(value: Any) -> str:
    """A value as the right-hand side of ``key=value`` (YAML, which JSON is a subset of)."""
    if isinstance(value, str) and yaml.safe_load(value) == value and "=" not in value:
        return value
    if isinstance(value, float) and math.isfinite(value):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        # YAML 1.1 reads "1e-05" (no dot) as a string: write "1.0e-05".
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    return json.dumps(value)


__all__ = ["Overrides", "as_overrides", "format_value"]
