"""One searched parameter's distribution (categorical, integer or float range, or a fixed
value), read from the search-space file's YAML, and the knob distributions each model declares
at registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PixelsegError
from ..models import get_entry


@dataclass(frozen=True)
class Dist:
    """One parameter's distribution: categorical, int, float, or fixed."""

    kind: str  # "categorical" | "int" | "float" | "fixed"
    choices: tuple = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    value: Any = None

    @classmethod
    def parse(cls, spec: Any, key: str) -> Dist:
        """A YAML value -> a distribution; errors name ``key``."""
        if isinstance(spec, list):
            if not spec:
                raise PixelsegError(f"{key}: an empty list of choices")
            for v in spec:
                if v is not None and not isinstance(v, (bool, int, float, str)):
                    raise PixelsegError(
                        f"{key}: choices must be numbers, strings, booleans or null, got {v!r}"
                    )
            return cls("categorical", choices=tuple(spec))
        if isinstance(spec, dict) and ("low" in spec or "high" in spec):
            unknown = set(spec) - {"low", "high", "log", "step"}
            if unknown or "low" not in spec or "high" not in spec:
                raise PixelsegError(
                    f"{key}: a range is {{low, high}} with optional log or step, got {spec}"
                )
            low, high = spec["low"], spec["high"]
            log, step = bool(spec.get("log")), spec.get("step")
            for name, v in (("low", low), ("high", high), ("step", step)):
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    raise PixelsegError(f"{key}: {name} must be a number, got {v!r}")
            if low > high:
                raise PixelsegError(f"{key}: low {low} is above high {high}")
            if log and low <= 0:
                raise PixelsegError(f"{key}: a log range needs low > 0, got {low}")
            if log and step is not None:
                raise PixelsegError(f"{key}: use log or step, not both")
            is_int = all(isinstance(v, int) for v in (low, high)) and (
                step is None or isinstance(step, int)
            )
            return cls("int" if is_int else "float", low=low, high=high, log=log, step=step)
        if isinstance(spec, dict):
            raise PixelsegError(
                f"{key}: expected a list of choices, {{low, high}} or a value, got {spec}"
            )
        return cls("fixed", value=spec)

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        if self.kind == "float":
            return trial.suggest_float(
                name, float(self.low), float(self.high), step=self.step, log=self.log
            )
        return self.value

    def values(self) -> list:
        """The extreme values (for checks that every choice builds)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind in ("int", "float"):
            return [self.low, self.high]
        return [self.value]

    def text(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        if self.kind == "fixed":
            return f"= {self.value}"
        return f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


def declared_knobs(model: str) -> dict[str, Dist]:
    """The knob distributions ``model`` declares for the search (``Knob.search``)."""
    return {
        k.name: Dist.parse(k.search_space(), f"{model}.{k.name} (declared search)")
        for k in get_entry(model).declared
        if k.search_space() is not None
    }
