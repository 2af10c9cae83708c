"""Typed run configuration: dataclasses, loaded from YAML, overridden by ``key=value``.

Unknown keys and values of the wrong type are errors that name the key. ``model.<knob>=v``
sets a model knob (checked against the model's constructor when the model is built).
Overrides are parsed once into typed values (``Overrides``, config_overrides.py) and applied
here (``apply_overrides``); a configuration is loaded once per command.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config_overrides import Overrides, as_overrides
from .errors import PixelsegError
from .files import read_yaml_mapping

TRACKERS = ("tensorboard", "mlflow")  # what train.track may name


@dataclass
class DataConfig:
    root: str = ""
    format: str = "auto"
    # "train+val": the final pass over every labelled image, once a configuration is fixed on val
    train_split: str = "train"
    val_split: str = "val"
    crop_size: list[int] | None = None  # [H, W] random training crop; None = whole images
    resize: list[int] | None = None  # [H, W] resize every image first (e.g. to fit a budget)
    num_workers: int = -1  # -1: chosen from the CPU count
    cache: bool = False  # keep decoded samples in memory (small datasets)
    skip_bad: bool = False  # drop unreadable/invalid samples instead of stopping


@dataclass
class AugmentConfig:
    enabled: bool = True
    rotation: float = 10.0  # max degrees, either way
    scale: list[float] = field(default_factory=lambda: [0.8, 1.25])
    hflip: float = 0.5  # probability
    vflip: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    # Where rotation/scale/flip and colour jitter run: "auto" (batched on the training device
    # when it is a GPU; per sample in the loader on a CPU, where both cost about the same, see
    # engine/device.py), true (batched on the device with kornia) or false (per sample).
    on_device: str | bool = "auto"
    # Photometric corruptions for robust training (names from pixelseg.data.corruptions, e.g.
    # [gaussian_noise, gaussian_blur, jpeg]); empty = off. Each training sample is corrupted with
    # probability corruption_p by one of them, at a severity drawn from 1..corruption_max_severity.
    corruptions: list[str] = field(default_factory=list)
    corruption_p: float = 0.5
    corruption_max_severity: int = 3
    # When set, the corruption probability moves linearly from corruption_p at the first epoch
    # to this at the last (of the planned epochs, re-fitted under a time budget): heavy
    # corruption while the features form, mostly clean images while the lr decays.
    corruption_p_final: float | None = None
    # AugMix-style blending: a corrupted sample becomes (1 - m) * image + m * corrupted, m drawn
    # uniformly from [0, 1) per sample, so training sees every strength between clean and the
    # drawn severity instead of five fixed steps.
    corruption_blend: bool = False


@dataclass
class ModelConfig:
    name: str = "unet"
    knobs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam | adamw | sgd
    schedule: str = "cosine"  # none | cosine | poly | step
    warmup_epochs: float = 0.0
    loss: str = "ce"
    class_weights: Any = None  # None | "median" | "sqrt" | [w0, w1, ...]
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | mps
    max_steps_per_epoch: int | None = None  # cap on loader batches (quick experiments and tests)
    # Images drawn per epoch, all processes together; None = one pass over the train split. On
    # a small split a longer epoch (the split repeated, each draw augmented anew) validates and
    # checkpoints less often: 40 images validated on 100 every epoch spend most time on val.
    images_per_epoch: int | None = None
    # Batching. batch_size is images per forward pass in each process; one optimizer step sees
    # batch_size x processes x accumulate images. global_batch_size, when set, fixes that product
    # instead and batch_size is derived from it, so a recipe means the same on 1 or N GPUs.
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    global_batch_size: int | None = None
    clip_grad_norm: float = 0.0  # max global L2 norm of the gradients; 0 = off
    ema_decay: float = 0.0  # EMA of the weights (e.g. 0.999), evaluated and saved as best; 0 = off
    early_stop_patience: int = 0  # stop after this many epochs without a better val mIoU; 0 = off
    # Wall-time budget: epochs are re-fitted after each one so the run (set-up, epochs and the
    # final evaluation) takes this long; train.epochs is then only the first guess.
    time_budget_minutes: float | None = None
    nan_rollback: bool = False  # on NaN/inf loss: roll back to the last epoch's state, halve the lr
    nan_max_retries: int = 3  # rollbacks allowed per run before giving up with an error
    compile: bool = False  # torch.compile the model (slow first steps; pays off on long GPU runs)
    compile_backend: str = "inductor"  # torch.compile backend (aot_eager: no C++ compiler needed)
    sync_bn: bool = False  # SyncBatchNorm across processes (CUDA + torchrun only)
    threads: int = 0  # CPU threads per process; 0 = the cores we were given / local processes
    # Fine-tuning a pretrained encoder (model.encoder=..., engine/finetune.py); no effect on a
    # model without one.
    encoder_lr_scale: float = 0.3  # the encoder's share of train.lr
    freeze_encoder_epochs: int = 0  # epochs with the encoder's lr at 0 (the decoder settles)
    encoder_bn: str = "frozen"  # frozen: ImageNet BatchNorm statistics kept; train: updated
    # The encoder's layers up to its features at this stride keep their pretrained weights
    # (0 = none): edges and textures need no re-learning, and the backward pass skips the
    # largest activations (CamVid, 30 min: 57 s epochs instead of ~87, val 0.688 vs 0.673).
    encoder_frozen_stride: int = 4
    # Experiment tracking (engine/tracking.py): any of TRACKERS, e.g. [tensorboard, mlflow].
    track: list[str] = field(default_factory=list)


@dataclass
class RunConfig:
    name: str = ""
    out_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except PixelsegError:
                pass
        raise PixelsegError(f"{key}: {value!r} is not a valid {_type_name(tp)}")
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise PixelsegError(f"{key}: expected a list like [a, b], got {value!r}")
        (inner,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, inner, key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise PixelsegError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads "3e-4" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp is bool and not isinstance(value, bool):
        raise PixelsegError(f"{key}: expected true or false, got {value!r}")
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PixelsegError(f"{key}: expected an integer, got {value!r}")
    if tp in (float, str) and not isinstance(value, tp):
        raise PixelsegError(f"{key}: expected a {tp.__name__}, got {value!r}")
    return value


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "")


def _apply(obj: Any, data: dict, prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(obj, ModelConfig) and key not in names:
            obj.knobs[key] = value  # a model knob, validated by create_model
            continue
        if key not in names:
            raise PixelsegError(
                f"{full}: unknown configuration key; valid keys: {', '.join(sorted(names))}"
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise PixelsegError(f"{full}: expected a section (mapping), got {value!r}")
            _apply(current, value, f"{full}.")
        elif key == "knobs":
            obj.knobs.update(_coerce(value, hints[key], full))
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def parse_overrides(pairs: list[str]) -> dict:
    """``["train.lr=3e-4", "model.depth=3"]`` -> nested dict; values parsed as YAML scalars."""
    return Overrides.parse(pairs).nested()


def load_config(
    path: str | Path | None = None,
    overrides: Overrides | Sequence[str] | None = None,
    base: RunConfig | None = None,
) -> RunConfig:
    """Defaults <- YAML file <- overrides (``Overrides`` or ``key=value`` strings), in that
    order."""
    cfg = base or RunConfig()
    if path is not None:
        data = read_yaml_mapping(path, "config file", "a mapping of sections at the top level")
        _apply(cfg, data, "")
    return apply_overrides(cfg, overrides)


def apply_overrides(
    cfg: RunConfig, overrides: Overrides | Sequence[str] | None = None
) -> RunConfig:
    """Set the typed values of ``overrides`` (``Overrides`` as they are, ``key=value`` strings
    parsed here, once) in ``cfg`` (in place, later pairs winning) and check the whole
    configuration; returns ``cfg``."""
    _apply(cfg, as_overrides(overrides).nested(), "")
    validate(cfg)
    return cfg


def check_value(key: str, value: Any) -> None:
    """Raise a PixelsegError naming ``key`` unless ``value`` is valid for it: its type, then
    the bounds ``validate`` sets (checked on the defaults with this one value, because the
    rules are written once, over a whole configuration)."""
    apply_overrides(RunConfig(), Overrides.of({key: value}))


# 64 Mpx (8k x 8k): the largest training size or crop; one such image is ~200 MB as uint8.
MAX_TRAIN_PIXELS = 64_000_000


def validate(cfg: RunConfig) -> None:
    t = cfg.train
    if t.epochs < 1:
        raise PixelsegError(f"train.epochs: must be >= 1, got {t.epochs}")
    if t.batch_size < 1:
        raise PixelsegError(f"train.batch_size: must be >= 1, got {t.batch_size}")
    if t.lr <= 0:
        raise PixelsegError(f"train.lr: must be > 0, got {t.lr}")
    if t.schedule not in ("none", "cosine", "poly", "step"):
        raise PixelsegError(f"train.schedule: {t.schedule!r} is not none, cosine, poly or step")
    if t.optimizer not in ("adam", "adamw", "sgd"):
        raise PixelsegError(f"train.optimizer: {t.optimizer!r} is not adam, adamw or sgd")
    _validate_train_engine(t)
    od = cfg.augment.on_device
    if isinstance(od, str) and od != "auto":
        raise PixelsegError(f"augment.on_device: expected auto, true or false, got {od!r}")
    for key in ("crop_size", "resize"):
        v = getattr(cfg.data, key)
        if v is not None and (len(v) != 2 or min(v) < 1):
            raise PixelsegError(f"data.{key}: expected [H, W] with positive sizes, got {v}")
        if v is not None and v[0] * v[1] > MAX_TRAIN_PIXELS:
            raise PixelsegError(
                f"data.{key}: {v[0]}x{v[1]} is over {MAX_TRAIN_PIXELS:,} pixels per image; "
                "a training image that large would not fit in memory"
            )
    if cfg.name and (cfg.name in (".", "..") or "/" in cfg.name or "\\" in cfg.name):
        raise PixelsegError(
            f"name: {cfg.name!r} must be a plain folder name (no '/', not '.' or '..'); "
            "the run goes under out_dir"
        )
    if len(cfg.augment.scale) != 2 or not 0 < cfg.augment.scale[0] <= cfg.augment.scale[1]:
        raise PixelsegError(
            f"augment.scale: expected [min, max] with 0 < min <= max, got {cfg.augment.scale}"
        )
    _validate_corruptions(cfg.augment)


def _validate_corruptions(a: AugmentConfig) -> None:
    from .data.corruptions import PHOTOMETRIC  # the one list of names; numpy/scipy only here

    for name in a.corruptions:
        if name in ("rotate", "scale"):
            raise PixelsegError(
                f"augment.corruptions: {name!r} is geometric; use augment.rotation / augment.scale"
            )
        if name not in PHOTOMETRIC:
            raise PixelsegError(
                f"augment.corruptions: unknown corruption {name!r}; "
                f"choose from {', '.join(PHOTOMETRIC)}"
            )
    if len(set(a.corruptions)) != len(a.corruptions):
        raise PixelsegError(f"augment.corruptions: a name is listed twice in {a.corruptions}")
    if not 0 <= a.corruption_p <= 1:
        raise PixelsegError(f"augment.corruption_p: must be in [0, 1], got {a.corruption_p}")
    if a.corruption_p_final is not None and not 0 <= a.corruption_p_final <= 1:
        raise PixelsegError(
            f"augment.corruption_p_final: must be in [0, 1], got {a.corruption_p_final}"
        )
    if not 1 <= a.corruption_max_severity <= 5:
        raise PixelsegError(
            f"augment.corruption_max_severity: must be 1..5, got {a.corruption_max_severity}"
        )


def _validate_train_engine(t: TrainConfig) -> None:
    """Bounds of the training-engine keys (batching, stability, stopping, compilation)."""
    if t.accumulate < 1:
        raise PixelsegError(f"train.accumulate: must be >= 1, got {t.accumulate}")
    if t.global_batch_size is not None and t.global_batch_size < 1:
        raise PixelsegError(
            f"train.global_batch_size: must be >= 1 (or null), got {t.global_batch_size}"
        )
    if t.clip_grad_norm < 0:
        raise PixelsegError(f"train.clip_grad_norm: must be >= 0 (0 = off), got {t.clip_grad_norm}")
    if not 0 <= t.ema_decay < 1:
        raise PixelsegError(
            f"train.ema_decay: must be in [0, 1) (0 = off; typical 0.999), got {t.ema_decay}"
        )
    if t.time_budget_minutes is not None and not t.time_budget_minutes > 0:
        raise PixelsegError(
            f"train.time_budget_minutes: must be a positive number of minutes, got "
            f"{t.time_budget_minutes}"
        )
    if t.early_stop_patience < 0:
        raise PixelsegError(
            f"train.early_stop_patience: must be >= 0 (0 = off), got {t.early_stop_patience}"
        )
    if t.nan_max_retries < 0:
        raise PixelsegError(f"train.nan_max_retries: must be >= 0, got {t.nan_max_retries}")
    if t.threads < 0:
        raise PixelsegError(f"train.threads: must be >= 0 (0 = from the cores), got {t.threads}")
    if t.warmup_epochs < 0:
        raise PixelsegError(f"train.warmup_epochs: must be >= 0, got {t.warmup_epochs}")
    if not 0 <= t.encoder_lr_scale <= 10:
        raise PixelsegError(f"train.encoder_lr_scale: must be in [0, 10], got {t.encoder_lr_scale}")
    if t.freeze_encoder_epochs < 0:
        raise PixelsegError(
            f"train.freeze_encoder_epochs: must be >= 0, got {t.freeze_encoder_epochs}"
        )
    for name in t.track:
        if name not in TRACKERS:
            raise PixelsegError(
                f"train.track: unknown tracker {name!r}; choose from {', '.join(TRACKERS)}"
            )
    if t.encoder_frozen_stride not in (0, 2, 4, 8, 16, 32):
        raise PixelsegError(
            "train.encoder_frozen_stride: expected 0 (none), 2, 4, 8, 16 or 32, got "
            f"{t.encoder_frozen_stride!r}"
        )
    if t.encoder_bn not in ("frozen", "train"):
        raise PixelsegError(f"train.encoder_bn: expected frozen or train, got {t.encoder_bn!r}")
    if t.images_per_epoch is not None and t.images_per_epoch < 1:
        raise PixelsegError(
            f"train.images_per_epoch: must be >= 1 (or null), got {t.images_per_epoch}"
        )
    if t.max_steps_per_epoch is not None and t.max_steps_per_epoch < 1:
        raise PixelsegError(
            f"train.max_steps_per_epoch: must be >= 1 (or null), got {t.max_steps_per_epoch}"
        )
