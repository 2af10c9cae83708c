"""What a study is asked to do (TuneOptions), the space it searches, and how one trial's
configuration is made from them. The decisions ``pixelseg tune`` takes from its options; the
command itself (running the trials, writing the outputs) is ``workflows/tune.py``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig, load_config
from ..config_overrides import Overrides, as_overrides
from ..errors import PixelsegError
from ..models import get_entry
from .space import LOCAL, SearchSpace, default_space, local_space


@dataclass
class TuneOptions:
    data: str | None = None
    trials: int = 20
    out: str = "tune"
    study: str = "study"
    storage: str | None = None  # default: sqlite:///<out>/<study>/study.db
    # A SearchSpace, LOCAL ("local": around the base configuration, see local_space), or
    # None for default_space().
    space: SearchSpace | str | None = None
    epochs_per_trial: int = 5
    minutes_per_trial: float | None = None
    timeout: float | None = None  # seconds for this worker; no new trial starts after it
    pruner: str = "median"
    seed: int = 0
    config: str | None = None  # base configuration file
    overrides: list[str] = field(default_factory=list)  # base key=value overrides
    verbose: bool = False  # the trainer's own log lines
    enqueue_base: bool = True  # the first trial of a new study is the base configuration

    @property
    def study_dir(self) -> Path:
        return Path(self.out) / self.study

    def base_overrides(self) -> Overrides:
        """--data, then the user's ``key=value`` overrides (parsed here)."""
        data = Overrides.of({"data.root": self.data}) if self.data else Overrides()
        return data + as_overrides(self.overrides)

    def search_space(self, base: RunConfig) -> SearchSpace:
        """The space the study searches: ``space`` itself, the one around ``base`` (the base
        configuration) for LOCAL, or ``default_space()`` when none was given."""
        if self.space == LOCAL:
            return local_space(base)
        if isinstance(self.space, str):
            raise PixelsegError(f"--space {self.space}: a YAML file or {LOCAL!r}")
        return self.space or default_space()


def trial_config(
    opts: TuneOptions, sampled: Overrides | Sequence[str], number: int | None = None
) -> RunConfig:
    """Base configuration <- the trial's choices; with ``number``, the trial's run settings
    (folder, epochs), else the base's (for best.yaml). Base model knobs that the sampled model
    does not have are dropped: a base ``model.width=8`` cannot apply to ReNet."""
    cfg = load_config(opts.config, opts.base_overrides() + as_overrides(sampled))
    has = get_entry(cfg.model.name).knobs()
    cfg.model.knobs = {k: v for k, v in cfg.model.knobs.items() if k in has}
    if number is not None:
        cfg.name, cfg.out_dir = f"trial-{number}", str(opts.study_dir / "trials")
        cfg.train.epochs = opts.epochs_per_trial
    return cfg
