"""The search space of ``pixelseg tune``: which configuration keys vary in a trial, and how.

The defaults search the model (family first, then a model of that family), the knobs each model
has (each model declares at registration which of its knobs are searched, and over what: see
``pixelseg models --json``), the optimiser and the augmentation. ``--space space.yaml`` changes
them; every section is optional and is merged into the defaults:

    models: [unet, lightseg, reseg]     # candidate models; default: every registered model
    params:                             # configuration key -> distribution
      train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      train.batch_size: [4, 8, 16]
      train.weight_decay: null          # null: not searched, the base configuration's value
      augment.colour: {low: 0.0, high: 0.4}          # brightness = contrast = saturation
      augment.scale_jitter: {low: 0.0, high: 0.5}    # augment.scale = [1/(1+s), 1+s]
      train.optimizer: adamw            # a single value: set in every trial, not searched
    knobs:                              # model knob -> distribution, for every candidate
      width: [8, 16, 32]                # model that has the knob; the others ignore it
      depth: {low: 2, high: 4}
      cell: [gru, lstm]
      embed_dim: null                   # null removes a default knob
    per_model:                          # one model's own distribution for a knob (wins)
      reseg: {depth: {low: 1, high: 3}}

A model's knob distribution is, from the strongest: its ``per_model`` entry, the ``knobs``
entry, the model's declared default; null at either level leaves the knob at its value in the
base configuration (the model's default unless the base sets it).

Distributions: a list is a categorical choice (of numbers, strings, booleans or null);
``{low, high}`` is an integer range when both ends are integers (``step`` optional), else a
float range (``log: true`` or ``step`` optional); any other single value is fixed.

Trial parameters are named after what they set: ``family``, ``cnn_model`` / ``rnn_model``
(asked only when there is a choice), configuration keys as written (``train.lr``), and model
knobs as ``<model>.<knob>`` (``unet.width``), because each model's knob is its own conditional
parameter: a width that suits one model says nothing about another's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import check_value
from ..config_overrides import Overrides
from ..errors import PixelsegError
from ..files import read_yaml_mapping
from ..models import get_entry, list_models
from .distributions import Dist, declared_knobs

# Keys that stand for several configuration keys at once (so the search has fewer dimensions).
DERIVED_KEYS = ("augment.colour", "augment.scale_jitter")

DEFAULT_PARAMS: dict[str, Any] = {
    "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "train.weight_decay": {"low": 1e-6, "high": 1e-3, "log": True},
    "train.batch_size": [4, 8, 16],
    "augment.rotation": {"low": 0.0, "high": 30.0},
    "augment.scale_jitter": {"low": 0.0, "high": 0.5},
    "augment.hflip": [0.0, 0.5],
    "augment.colour": {"low": 0.0, "high": 0.4},
}

SECTIONS = ("models", "params", "knobs", "per_model")


@dataclass
class SearchSpace:
    """``knobs`` and ``per_model`` hold what the space file gives (None: not searched); the
    models' declared distributions lie beneath them (see ``knobs_for``)."""

    models: list[str]
    params: dict[str, Dist] = field(default_factory=dict)
    knobs: dict[str, Dist | None] = field(default_factory=dict)
    per_model: dict[str, dict[str, Dist | None]] = field(default_factory=dict)

    def knobs_for(self, model: str) -> dict[str, Dist]:
        """The knob distributions that apply to ``model`` (only knobs it has): its declared
        ones <- ``knobs`` <- ``per_model[model]``."""
        has = get_entry(model).knobs()
        dists = declared_knobs(model)
        for given in (self.knobs, self.per_model.get(model, {})):
            for knob, dist in given.items():
                if knob not in has:
                    continue
                if dist is None:
                    dists.pop(knob, None)
                else:
                    dists[knob] = dist
        return dists

    def families(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in self.models:
            out.setdefault(get_entry(name).family, []).append(name)
        return out

    def sample(self, trial: Any) -> Overrides:
        """Ask ``trial`` for every parameter; return the choices as typed overrides."""
        families = self.families()
        family = next(iter(families))
        if len(families) > 1:
            family = trial.suggest_categorical("family", sorted(families))
        models = families[family]
        model = models[0]
        if len(models) > 1:
            model = trial.suggest_categorical(f"{family}_model", models)
        pairs: dict[str, Any] = {"model.name": model}
        for key, dist in self.params.items():
            pairs.update(expand(key, dist.suggest(trial, key)))
        for knob, dist in self.knobs_for(model).items():
            pairs[f"model.{knob}"] = dist.suggest(trial, f"{model}.{knob}")
        return Overrides.of(pairs)

    def params_of(self, cfg: Any) -> dict[str, Any] | None:
        """The trial parameters that reproduce configuration ``cfg`` as closely as the space
        allows (for ``study.enqueue_trial``), or None when its model is not a candidate.

        Values outside a range are clamped into it; a categorical parameter whose value is
        not among the choices is left out, for the sampler to choose.
        """
        model = cfg.model.name
        if model not in self.models:
            return None
        family = get_entry(model).family
        families = self.families()
        params: dict[str, Any] = {}
        if len(families) > 1:
            params["family"] = family
        if len(families[family]) > 1:
            params[f"{family}_model"] = model
        knob_values = {**get_entry(model).knobs(), **cfg.model.knobs}
        dists = {**self.params, **{f"{model}.{k}": d for k, d in self.knobs_for(model).items()}}
        for name in dists:
            if name in self.params:
                params[name] = _config_value(cfg, name)
            else:
                params[name] = knob_values[name.split(".", 1)[1]]
        out = {}
        for name, value in params.items():
            dist = dists.get(name)
            if dist is None:  # family / model choice
                out[name] = value
            elif dist.kind == "categorical":
                if value in dist.choices:
                    out[name] = value
            elif dist.kind in ("int", "float"):
                clamped = min(max(value, dist.low), dist.high)
                out[name] = int(round(clamped)) if dist.kind == "int" else float(clamped)
        return out

    def describe(self) -> str:
        """Several lines, one per parameter, for the log."""
        lines = []
        for fam, names in self.families().items():
            lines.append(f"  {fam} models: {', '.join(names)}")
        for key, d in self.params.items():
            lines.append(f"  {key}: {d.text()}")
        for name in self.models:
            knobs = ", ".join(f"{k} {d.text()}" for k, d in self.knobs_for(name).items())
            lines.append(f"  {name} knobs: {knobs or '(none searched)'}")
        return "\n".join(lines)


def _config_value(cfg: Any, key: str) -> Any:
    """The value of a (possibly derived) search key in a configuration: the inverse of
    ``expand``. ``augment.colour`` reads the brightness strength."""
    if key == "augment.colour":
        return cfg.augment.brightness
    if key == "augment.scale_jitter":
        return max(cfg.augment.scale[1] - 1.0, 1.0 / cfg.augment.scale[0] - 1.0)
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def expand(key: str, value: Any) -> dict[str, Any]:
    """A derived key -> the configuration keys it sets; any other key -> itself."""
    if key == "augment.colour":
        return {f"augment.{k}": value for k in ("brightness", "contrast", "saturation")}
    if key == "augment.scale_jitter":
        return {"augment.scale": [round(1.0 / (1.0 + value), 4), round(1.0 + value, 4)]}
    return {key: value}


def default_space() -> SearchSpace:
    return build_space({})


LOCAL = "local"  # --space local


def local_space(cfg: Any) -> SearchSpace:
    """``--space local``: the base configuration's own model, its numbers searched around the
    base values (learning rate /3..x3, batch size and widths halved or doubled, depths +-1,
    augmentation from none to about twice the base), the default space's choices for
    categorical knobs (activation, kernel size, cell).

    The broad default space asks 20 trials to choose a model family, a model and ~12 numbers;
    on a short budget most of them land far from anything that trains. When the model is
    settled, this space spends the same trials where a better configuration is likely.
    """
    model = cfg.model.name
    t, a = cfg.train, cfg.augment
    params: dict[str, Any] = {
        "train.lr": {"low": t.lr / 3, "high": t.lr * 3, "log": True},
        "train.batch_size": sorted({max(2, t.batch_size // 2), t.batch_size, 2 * t.batch_size}),
        "augment.rotation": {"low": 0.0, "high": max(2.0 * a.rotation, 10.0)},
        "augment.scale_jitter": {"low": 0.0, "high": max(2.0 * (a.scale[1] - 1.0), 0.2)},
        "augment.colour": {"low": 0.0, "high": max(2.0 * a.brightness, 0.2)},
    }
    knobs: dict[str, Any] = {}
    for knob, value in {**get_entry(model).knobs(), **cfg.model.knobs}.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue  # categorical knobs keep the default space's choices
        if knob in ("width", "hidden_size", "embed_dim"):
            knobs[knob] = sorted({max(1, value // 2), value, 2 * value})
        elif knob in ("depth", "num_layers"):
            knobs[knob] = {"low": max(1, value - 1), "high": value + 1}
    # per_model wins over the models' declared ranges (reseg's depth).
    return build_space({"models": [model], "params": params, "per_model": {model: knobs}})


def load_space(path: str | Path | None) -> SearchSpace:
    """The defaults merged with the YAML file at ``path`` (see the module docstring)."""
    if path is None:
        return default_space()
    data = read_yaml_mapping(
        path, "search space file", f"a mapping with sections {', '.join(SECTIONS)}"
    )
    try:
        return build_space(data)
    except PixelsegError as e:
        raise PixelsegError(f"{path}: {e}") from None


def build_space(data: dict) -> SearchSpace:
    """Defaults <- ``data`` (the parsed YAML), checked against the config and the registry."""
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise PixelsegError(
            f"{sorted(unknown)[0]}: unknown section; sections are {', '.join(SECTIONS)}"
        )
    registered = {e.name: e for e in list_models()}
    models = data.get("models") or sorted(registered)
    if models == "all":
        models = sorted(registered)
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list):
        raise PixelsegError(f"models: expected a list of model names, got {models!r}")
    for name in models:
        if name not in registered:
            raise PixelsegError(
                f"models: unknown model {name!r}; registered: {', '.join(sorted(registered))}"
            )
    params = _merge(DEFAULT_PARAMS, data.get("params"), "params")
    knobs = _given(data.get("knobs"), "knobs")
    per_model_raw = data.get("per_model") or {}
    if not isinstance(per_model_raw, dict):
        raise PixelsegError("per_model: expected a mapping of model -> knob distributions")
    per_model = {}
    for name in per_model_raw:
        if name not in registered:
            raise PixelsegError(f"per_model.{name}: unknown model")
        per_model[name] = _given(per_model_raw.get(name), f"per_model.{name}")
        for knob, dist in per_model[name].items():
            if dist is not None and knob not in registered[name].knobs():
                raise PixelsegError(
                    f"per_model.{name}.{knob}: not a knob of {name}; its knobs "
                    f"are {', '.join(registered[name].knobs())}"
                )
    for key in params:
        _check_param_key(key, params[key])
    all_knobs = {k for name in models for k in registered[name].knobs()}
    for knob, dist in knobs.items():
        if dist is not None and knob not in all_knobs:
            raise PixelsegError(
                f"knobs.{knob}: none of the candidate models ({', '.join(models)}) has this knob"
            )
    return SearchSpace(list(models), params, knobs, per_model)


def _merge(defaults: dict, given: Any, section: str) -> dict[str, Dist]:
    merged = {**defaults, **_given(given, section)}
    return {
        k: v if isinstance(v, Dist) else Dist.parse(v, f"{section}.{k}")
        for k, v in merged.items()
        if v is not None
    }


def _given(given: Any, section: str) -> dict[str, Dist | None]:
    """A section of the space file: key -> distribution, None where the file says null."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise PixelsegError(f"{section}: expected a mapping of key -> distribution")
    return {k: None if v is None else Dist.parse(v, f"{section}.{k}") for k, v in given.items()}


def _check_param_key(key: str, dist: Dist) -> None:
    """A searched key must be a configuration key (or a derived one), and its values valid."""
    if key.startswith("model."):
        raise PixelsegError(
            f"params.{key}: model knobs go in the knobs section, the model choice in models"
        )
    if key in DERIVED_KEYS:
        return
    for value in dist.values():
        try:
            check_value(key, value)
        except PixelsegError as e:
            raise PixelsegError(f"params.{key}: {e}") from None
