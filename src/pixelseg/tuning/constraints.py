"""What the user fixed, for the planner to keep and work around: the keys of their overrides,
and the few the planning rules read, as typed fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Fixed(Generic[T]):
    """A value the user set, which may itself be None (``data.resize=null``: no resize, and
    the plan must not choose one)."""

    value: T


@dataclass(frozen=True)
class Constraints:
    """``values``: every flat key the user set (each is shown as "yours" in the plan); the
    fields: the ones the ladder and the rules work around (None: the plan chooses)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    knobs: dict[str, Any] = field(default_factory=dict)  # model.* except the name
    batch_size: int | None = None
    epochs: int | None = None
    budget_minutes: float | None = None  # train.time_budget_minutes: the plan's budget too
    resize: Fixed[list[int] | None] | None = None
    crop_size: Fixed[list[int] | None] | None = None
    corruption_p: float | None = None

    @classmethod
    def of(cls, values: Mapping[str, Any] | None) -> Constraints:
        """From the user's flat keys (``Overrides.flat()``)."""
        v = dict(values or {})

        def number(key: str, kind: type) -> Any:
            return kind(v[key]) if v.get(key) is not None else None

        return cls(
            values=v,
            model=v.get("model.name"),
            knobs={
                k[len("model.") :]: x
                for k, x in v.items()
                if k.startswith("model.") and k != "model.name"
            },
            batch_size=number("train.batch_size", int),
            epochs=number("train.epochs", int),
            # a budget of 0 or null is no budget: the plan's default holds
            budget_minutes=number("train.time_budget_minutes", float) or None,
            resize=Fixed(v["data.resize"]) if "data.resize" in v else None,
            crop_size=Fixed(v["data.crop_size"]) if "data.crop_size" in v else None,
            corruption_p=number("augment.corruption_p", float),
        )
