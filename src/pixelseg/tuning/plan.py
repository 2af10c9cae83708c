"""Self-configuration: a dataset and hardware fingerprint turned into a training plan.

``pixelseg plan --data DIR`` prints the plan; ``pixelseg train --data DIR`` without model
options (no --model, --config or model.* overrides) applies it, prints it and saves it in the
run as plan.json. A plan is a list of ``key=value`` overrides with a reason each, applied
*before* the user's overrides: whatever the user sets wins, and the plan works around it (a
batch size you fix is the one the epoch estimate uses).

How the choices are made (nnU-Net's idea, with a time budget instead of a GPU-memory one):

1. Time. First, when ImageNet weights are installed (lite0's come with pixelseg), a pretrained
   candidate: lightseg 32 wide over EfficientNet-Lite0. It is judged by epochs, not by the
   epoch time: it is taken at the largest scale where the budget gives it at least
   ``PRETRAINED_MIN_EPOCHS`` epochs, because fine-tuning converges in far fewer epochs than
   learning features from scratch: on CamVid (30 min, 2 cores) it scored val mIoU 0.673 in 19
   full-size epochs against 0.629 for the best from-scratch rung (docs/pretrained.md). The
   margin matters: at full CamVid size the budget gives it 19-23 epochs against the 12 it
   needs, so 5% of timing noise cannot flip the choice.
   Otherwise (no weights, or a budget too short at every scale): an epoch should take about
   ``Targets.epoch_seconds`` (a minute) here. Candidate models
   are timed on random tensors (``cost.py``), from the most capable down (CPU: U-Net width 32,
   width 16, then the lightweight CNN 24 and 16 wide; GPU: U-Net width 64, 32, lightweight), at
   full resolution first, then at 3/4, 1/2, 3/8, 1/4 of it (never below 128 px on the short
   side). The first that fits is taken: resolution is kept before capacity, because thin and
   small classes vanish when downscaled and a light model still learns them. A more capable
   model must also get at least ``Targets.min_epochs`` epochs from the budget; with a shorter
   budget the lightest that fits is taken at that resolution, for the most epochs. The
   recurrent models are not on the ladder because, measured, they never win a place: on CamVid
   (30 min, 2 cores, ``bench/camvid.py``) reseg with depth 3 at 180x240 scored val mIoU 0.575
   at ~38 s per epoch, and lightseg at the same size 0.598 at ~10 s per epoch (lightseg at full
   size: 0.622 and 0.628 for two seeds). The hybrid ``lightseg context=renet`` (ReNet sweeps at
   1/16) ties with it at full size, 0.615 and 0.641, but its epochs take ~43 s instead of ~33
   s, so the ladder keeps the plain model. ``pixelseg plan model.name=reseg`` (or
   ``model.context=renet``) sizes a plan around a recurrent model when one is wanted. Uniformly
   sized images are downscaled with ``data.resize`` (cheaper training, validation and
   prediction); images of varying sizes are cropped instead (``data.crop_size``), which keeps
   their aspect ratio.
2. Batch: on CPU, the largest power of two up to 8 with at most ~0.77 Mpx per batch (the
   throughput barely changes with the batch size there, and more steps per epoch help
   training from scratch); on CUDA, the largest up to 32 whose measured training memory fits
   in half of the GPU. Either way, at least 8 steps per epoch.
3. Epochs: enough optimizer steps (``Targets.steps_wanted``), capped by the total budget
   (``Targets.total_minutes``), within [10, 200].
4. Class weights: inverse-square-root frequency weights when the commonest class has more
   than 10 times the pixels of the rarest (median-frequency weights, tried first, buy
   rare-class recall with the precision of everything else).
5. Augmentation: stronger rotation and scaling for small datasets (< 500 images), lighter for
   large ones (> 5000).
6. Cache: decoded images kept in memory when the loader runs in the training process and
   the decoded dataset takes less than 2 GiB and a quarter of the memory.
7. Corruptions: photometric corruptions (``PLAN_CORRUPTIONS``; shot noise, motion blur and
   pixelate stay out so that ``pixelseg robustness`` shows what carries over), in one of two
   recipes chosen by the model's width (``corruption_recipe``). Measured on CamVid (30 min, 2
   cores, README "Robust training"): a 16-wide lightseg pays for robustness with clean
   accuracy. The mild recipe (a quarter of the samples, severities 1-3) costs it nothing and
   holds 0.75-0.79 of clean under the held-out types (0.50 without corruptions), but every
   stronger one that held >= 0.80 (p 0.4 at severities up to 4 over four seeds, p falling from
   0.6 to 0.2, p rising from 0.1 to 0.7) cost it ~2 clean points. A 24-wide lightseg has the
   capacity: the robust recipe (p falling from 0.6 to 0.2, severities up to 4) scored 63.4
   clean and 0.83 held out, against 62.2 clean for the same model without corruptions and
   62.8 for the 16-wide one (33 epochs of ~52 s against 53 of ~32.5 s). So a model >=
   ``ROBUST_MIN_WIDTH`` wide gets the robust recipe, a narrower one the mild recipe.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, load_config, parse_overrides
from ..data.formats import open_split
from ..data.loader import loader_workers
from ..engine.device import configure_threads, pick_device
from ..errors import PixelsegError
from ..files import atomic_write_text
from ..models import get_entry, list_models
from ..models.encoders.pretrained import weights_installed
from .cost import ModelCost, measure_data_cost, measure_model_cost
from .fingerprint import (
    DatasetFingerprint,
    HardwareFingerprint,
    fingerprint_dataset,
    fingerprint_hardware,
)
from .space import format_value


@dataclass(frozen=True)
class Rung:
    """One candidate of a ladder. A from-scratch model must fit ``Targets.epoch_seconds`` per
    epoch; a pretrained one (``encoder`` set) is judged by epochs alone: it must get at least
    ``min_epochs`` from the budget. ``min_epochs`` None: ``Targets.min_epochs``."""

    model: str
    knobs: dict
    min_epochs: int | None = None

    @property
    def encoder(self) -> str | None:
        encoder = self.knobs.get("encoder", "native")
        return None if encoder == "native" else encoder


# A pretrained encoder needs far fewer epochs than a model that learns its features from
# scratch: on CamVid lightseg over EfficientNet-Lite0 was at 0.66 of its final 0.673 val mIoU
# after 9 epochs (docs/pretrained.md), while from scratch 30 were the fewest worth taking.
PRETRAINED_MIN_EPOCHS = 12
CPU_LADDER: list[Rung] = [
    Rung("lightseg", {"encoder": "efficientnet_lite0", "width": 32}, PRETRAINED_MIN_EPOCHS),
    Rung("unet", {"width": 32}),
    Rung("unet", {"width": 16}),
    Rung("lightseg", {"width": 24}),
    Rung("lightseg", {"width": 16}),
]
GPU_LADDER: list[Rung] = [
    Rung("unet", {"width": 64}),
    Rung("unet", {"width": 32}),
    Rung("lightseg", {"width": 32}),
]
SCALES = (1.0, 0.75, 0.5, 0.375, 0.25)
CPU_BATCH_PIXELS = 768_000  # ~4 CamVid images (360x480) per batch
MAX_TRAIN_SIDE = {"cpu": 512, "gpu": 1024}  # larger images are trained on crops of this
IMBALANCE_RATIO = 10.0
CACHE_MAX_BYTES = 2 * 2**30
DECODED_BYTES_PER_PIXEL = 3 + 8  # uint8 RGB image + int64 mask

# Trained on by default; shot noise, motion blur and pixelate stay out, so `pixelseg robustness`
# shows what carries over to corruptions the model never saw.
PLAN_CORRUPTIONS = ["gaussian_noise", "gaussian_blur", "jpeg", "contrast", "brightness"]


@dataclass(frozen=True)
class CorruptionRecipe:
    """How often and how hard the plan corrupts training images (``augment.corruption_*``)."""

    p: float
    p_final: float | None  # None: constant p
    max_severity: int
    reason: str


# A model at least this wide gets the robust recipe; a narrower one the mild recipe, because on
# a 16-wide model every recipe that held >= 0.80 of clean under unseen corruptions cost ~2 clean
# points, and on a 24-wide one the robust recipe cost none (module docstring, item 7).
ROBUST_MIN_WIDTH = 24
ROBUST_CORRUPTIONS = CorruptionRecipe(
    0.6,
    0.2,
    4,
    f"robust recipe for a model >= {ROBUST_MIN_WIDTH} wide: most corruption while the features "
    "form (p 0.6 falling to 0.2); it holds unseen corruptions at no clean cost (see plan.py)",
)
MILD_CORRUPTIONS = CorruptionRecipe(
    0.25,
    None,
    3,
    f"mild recipe for a model < {ROBUST_MIN_WIDTH} wide: stronger ones cost it ~2 clean points "
    "(see plan.py)",
)

CostFn = Callable[[str, dict], ModelCost]


@dataclass
class Targets:
    epoch_seconds: float = 60.0
    total_minutes: float | None = None  # None: 30 on CPU, 60 on a GPU
    steps_wanted: int = 3000
    min_side: int = 128
    # The fewest epochs the budget must allow before a more capable model is worth its slower
    # epochs at the same resolution (on CamVid lightseg 24 wide won with 33 epochs in 30 min;
    # with a shorter budget the plan spends the time on epochs of a lighter model instead).
    min_epochs: int = 30

    def total_seconds(self, hw: HardwareFingerprint) -> float:
        return 60.0 * (self.total_minutes or (60.0 if hw.is_gpu else 30.0))


@dataclass
class Choice:
    key: str
    value: Any
    reason: str
    source: str = "plan"  # "plan", or "yours" when the user's override sets the key


@dataclass
class Plan:
    choices: list[Choice]
    dataset: DatasetFingerprint
    hardware: HardwareFingerprint
    estimates: dict = field(default_factory=dict)

    def overrides(self) -> list[str]:
        """The plan's own choices as ``key=value`` (the user's are passed after them)."""
        return [f"{c.key}={format_value(c.value)}" for c in self.choices if c.source == "plan"]

    def value(self, key: str) -> Any:
        return next(c.value for c in self.choices if c.key == key)

    def table(self) -> str:
        ds, hw = self.dataset, self.hardware
        h, w = ds.median_hw
        head = (
            f"plan: {ds.format} layout, {ds.n_train} train / {ds.n_val} val images, "
            f"{ds.num_classes} classes, median size {h}x{w}; {hw.text()}"
        )
        rows = [
            (c.key, format_value(c.value) + (" (yours)" if c.source == "yours" else ""), c.reason)
            for c in self.choices
        ]
        kw = max(len("choice"), *(len(r[0]) for r in rows))
        vw = max(len("value"), *(len(r[1]) for r in rows))
        lines = [head, f"  {'choice':<{kw}}  {'value':<{vw}}  reason"]
        lines += [f"  {k:<{kw}}  {v:<{vw}}  {r}" for k, v, r in rows]
        est = self.estimates
        if "epoch_seconds" in est:
            lines.append(
                f"estimated: ~{_num(est['epoch_seconds'])} s per epoch, "
                f"~{_num(est['total_minutes'])} min for {est['epochs']} epochs "
                f"(timed on this machine; a busy machine is slower)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "choices": [c.__dict__ for c in self.choices],
            "overrides": self.overrides(),
            "dataset": self.dataset.to_dict(),
            "hardware": self.hardware.to_dict(),
            "estimates": self.estimates,
        }

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / "plan.json"
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        return path


def flat_keys(overrides: list[str]) -> dict[str, Any]:
    """``["train.lr=0.1", "data.resize=[64, 64]"]`` -> {"train.lr": 0.1, "data.resize": [64,
    64]}: the keys the user set, for the plan to leave alone."""
    out: dict[str, Any] = {}

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(parse_overrides(overrides), "")
    return out


def _num(x: float) -> str:
    """3 significant-ish figures without exponent noise: 0.42, 4.2, 42, 420."""
    return f"{x:.2g}" if x < 1 else f"{x:.1f}" if x < 10 else f"{x:.0f}"


def _pow2_at_most(n: float, lo: int, hi: int) -> int:
    b = lo
    while b * 2 <= min(n, hi):
        b *= 2
    return b


def choose_batch(
    cost: ModelCost, train_hw: tuple[int, int], n_train: int, hw: HardwareFingerprint
) -> tuple[int, str]:
    pixels = train_hw[0] * train_hw[1]
    step_cap = max(2, n_train // 8)  # at least 8 optimizer steps per epoch
    if hw.gpu_memory_bytes and cost.peak_bytes_per_mpix:
        per_image = cost.peak_bytes_per_mpix * pixels / 1e6
        fit = 0.5 * hw.gpu_memory_bytes / max(per_image, 1.0)
        b = _pow2_at_most(min(fit, step_cap), 2, 32)
        return b, (
            f"~{per_image / 2**20:.0f} MiB of training memory per image (measured): "
            f"{b} fit in half of the GPU's {hw.gpu_memory_bytes / 2**30:.0f} GiB"
            + (", capped for >= 8 steps/epoch" if step_cap < fit else "")
        )
    hi = 32 if hw.is_gpu else 8
    b = _pow2_at_most(min(CPU_BATCH_PIXELS / pixels, step_cap), 2, hi)
    return b, (
        f"{b} x {train_hw[0]}x{train_hw[1]} px per batch: throughput barely depends on "
        f"the batch here, and more steps per epoch help training"
    )


@dataclass
class _Option:
    model: str
    knobs: dict
    scale: float
    train_hw: tuple[int, int]
    val_hw: tuple[int, int]
    resize: list[int] | None
    crop: list[int] | None
    batch: int
    batch_reason: str
    epoch_s: float
    reason: str = ""  # why the ladder took it, when a rule other than the epoch time did

    def label(self) -> str:
        knobs = ",".join(f"{k}={v}" for k, v in self.knobs.items())
        return f"{self.model}({knobs})" if knobs else self.model


def _geometry(
    ds: DatasetFingerprint, hw: HardwareFingerprint, scale: float, fixed: dict
) -> tuple[list[int] | None, list[int] | None, tuple, tuple, str]:
    """(resize, crop, train_hw, val_hw, reason) at ``scale`` of the median size."""
    h, w = ds.median_hw
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    resize = fixed.get("data.resize", "unset")
    crop = fixed.get("data.crop_size", "unset")
    cap = MAX_TRAIN_SIDE["gpu" if hw.is_gpu else "cpu"]
    reason = ""
    if resize == "unset":
        resize = None
        if scale < 1 and not ds.sizes_vary:
            resize = [sh, sw]
            reason = f"downscaled x{scale:g} from {h}x{w} to fit the time budget"
    if crop == "unset":
        crop = None
        base = resize or [sh, sw]
        if ds.sizes_vary and resize is None:
            # Crops keep aspect ratios; batches of whole images of mixed sizes would be padded.
            base = [
                min(sh, ds.min_hw[0]) if scale == 1 else sh,
                min(sw, ds.min_hw[1]) if scale == 1 else sw,
            ]
            crop = [min(base[0], cap), min(base[1], cap)]
            reason = (
                f"image sizes vary ({ds.min_hw[0]}x{ds.min_hw[1]} to {ds.max_hw[0]}x"
                f"{ds.max_hw[1]}): random crops, no resize (keeps aspect ratios)"
                + (f", x{scale:g} of the median for the time budget" if scale < 1 else "")
            )
        elif max(base) > cap:
            crop = [min(base[0], cap), min(base[1], cap)]
            reason = f"images over {cap} px on a side: trained on random crops"
    val_hw = tuple(resize) if resize else (h, w)
    train_hw = tuple(crop) if crop else val_hw
    return resize, crop, train_hw, val_hw, reason


def _scales(ds: DatasetFingerprint, targets: Targets, fixed: dict) -> list[float]:
    if "data.resize" in fixed:
        return [1.0]
    short = min(ds.median_hw)
    floor = min(short, targets.min_side)
    return [s for s in SCALES if short * s >= floor]


def search_options(
    ds: DatasetFingerprint, hw: HardwareFingerprint, fixed: dict, targets: Targets, cost_fn: CostFn
) -> tuple[_Option, list[_Option], str]:
    """The first (scale, model) that fits the epoch budget, every option tried, geometry reason."""
    registered = {e.name for e in list_models()}
    ladder = [
        r
        for r in (GPU_LADDER if hw.is_gpu else CPU_LADDER)
        if r.model in registered and (r.encoder is None or weights_installed(r.encoder))
    ]
    if "model.name" in fixed:  # `pixelseg plan ... model.name=X`: plan around the user's model
        knobs = {
            k[len("model.") :]: v
            for k, v in fixed.items()
            if k.startswith("model.") and k != "model.name"
        }
        pretrained = (
            knobs.get("encoder", "native") != "native" and knobs.get("pretrained") != "none"
        )
        ladder = [Rung(fixed["model.name"], knobs, PRETRAINED_MIN_EPOCHS if pretrained else None)]
    elif not ladder:
        ladder = [Rung(sorted(registered)[0], {})]
    tried: list[_Option] = []
    geo_reason = ""
    total_s = targets.total_seconds(hw)
    for scale in _scales(ds, targets, fixed):
        resize, crop, train_hw, val_hw, geo_reason = _geometry(ds, hw, scale, fixed)
        fitting: list[_Option] = []
        for rung in ladder:
            cost = cost_fn(rung.model, rung.knobs)
            if "train.batch_size" in fixed:
                batch, breason = int(fixed["train.batch_size"]), "yours"
            else:
                batch, breason = choose_batch(cost, train_hw, ds.n_train, hw)
            sec = cost.epoch_seconds(ds.n_train, train_hw, ds.n_val, val_hw, batch)
            opt = _Option(
                rung.model, rung.knobs, scale, train_hw, val_hw, resize, crop, batch, breason, sec
            )
            tried.append(opt)
            epochs = total_s / max(sec, 1e-3)
            if rung.min_epochs is not None:  # pretrained: judged by the epochs it gets
                if epochs >= rung.min_epochs:
                    opt.reason = (
                        f"pretrained encoder: the budget gives it ~{epochs:.0f} epochs at x"
                        f"{scale:g}, >= the {rung.min_epochs} that fine-tuning needs"
                    )
                    return opt, tried, geo_reason
            elif sec <= targets.epoch_seconds:
                if epochs >= targets.min_epochs:
                    return opt, tried, geo_reason
                fitting.append(opt)
        if fitting:  # a short budget: the lightest model that fits, for the most epochs
            return fitting[-1], tried, geo_reason
    # Nothing fits: the cheapest option measured, and the reason says so.
    return min(tried, key=lambda o: o.epoch_s), tried, geo_reason


def make_plan(
    ds: DatasetFingerprint,
    hw: HardwareFingerprint,
    cost_fn: CostFn,
    fixed: dict | None = None,
    targets: Targets | None = None,
) -> Plan:
    """Decide the plan from the fingerprints; ``fixed`` holds the user's overrides (flat keys)."""
    fixed = dict(fixed or {})
    targets = targets or Targets()
    if fixed.get("train.time_budget_minutes"):  # --budget-minutes: the plan's budget too
        targets = dataclasses.replace(
            targets, total_minutes=float(fixed["train.time_budget_minutes"])
        )
    best, tried, geo_reason = search_options(ds, hw, fixed, targets, cost_fn)
    choices: list[Choice] = []

    def add(key: str, value: Any, reason: str) -> None:
        if key in fixed:
            choices.append(
                Choice(key, fixed[key], "set by you (the plan works around it)", "yours")
            )
        else:
            choices.append(Choice(key, value, reason))

    h, w = ds.median_hw
    fits = best.epoch_s <= targets.epoch_seconds or bool(best.reason)
    if best.resize:
        add("data.resize", best.resize, geo_reason or f"downscaled x{best.scale:g}")
    else:
        add(
            "data.resize",
            None,
            f"full resolution {h}x{w}"
            + (" fits the time budget" if fits and best.scale == 1 else ""),
        )
    add("data.crop_size", best.crop, geo_reason if best.crop else "whole images")
    add("model.name", best.model, _model_reason(best, tried, targets, fits))
    for knob, value in best.knobs.items():
        add(f"model.{knob}", value, "see model.name")
    add("train.batch_size", best.batch, best.batch_reason)
    steps = max(1, ds.n_train // best.batch)
    total_s = targets.total_seconds(hw)
    by_time = max(1, int(total_s // max(best.epoch_s, 1e-3)))
    by_steps = math.ceil(targets.steps_wanted / steps)
    epochs = int(min(200, max(10, min(by_time, by_steps))))
    epochs = int(fixed.get("train.epochs", epochs))
    add(
        "train.epochs",
        epochs,
        f"first guess: {targets.steps_wanted} optimizer steps at {steps}/epoch = {by_steps} "
        f"epochs; the {total_s / 60:.0f} min budget allows {by_time}; kept within [10, 200]",
    )
    add(
        "train.time_budget_minutes",
        round(total_s / 60, 2),
        "the run fills this budget: after each epoch the number of epochs, and the lr "
        "schedule with it, is re-fitted to the measured time (validation, checkpoints and "
        "the final evaluation included)",
    )
    ratio, rare, common = ds.imbalance()
    names = ds.class_names
    if ratio > IMBALANCE_RATIO:
        add(
            "train.class_weights",
            "sqrt",
            f"imbalanced: '{names[common]}' has {ratio:.0f}x the pixels of '{names[rare]}' "
            f"(> {IMBALANCE_RATIO:g}x): inverse-sqrt frequency weights (on CamVid val they "
            "beat median-frequency weights by 3 mIoU points, see bench/imbalance.py)",
        )
    else:
        add(
            "train.class_weights",
            None,
            f"balanced enough: at most {ratio:.1f}x between classes (<= {IMBALANCE_RATIO:g}x)",
        )
    rot, scale_range, why = _augmentation(ds.n_train)
    add("augment.rotation", rot, why)
    add("augment.scale", scale_range, why)
    recipe = corruption_recipe(best.model, best.knobs)
    add("augment.corruptions", PLAN_CORRUPTIONS, recipe.reason)
    add("augment.corruption_p", recipe.p, recipe.reason)
    if "augment.corruption_p" in fixed:  # your rate stays constant unless you schedule it
        add("augment.corruption_p_final", None, "your augment.corruption_p, kept constant")
    else:
        add("augment.corruption_p_final", recipe.p_final, recipe.reason)
    add("augment.corruption_max_severity", recipe.max_severity, recipe.reason)
    cache, cache_reason = _cache_choice(ds, hw)
    add("data.cache", cache, cache_reason)
    epoch_s = best.epoch_s  # estimated with the user's batch size and geometry, when fixed
    estimates = {
        "epoch_seconds": round(epoch_s, 2),
        "epochs": epochs,
        "total_minutes": round(epoch_s * epochs / 60, 2),
        "target_epoch_seconds": targets.epoch_seconds,
        "fits_budget": fits,
        "candidates": [
            {
                "model": o.model,
                "knobs": o.knobs,
                "scale": o.scale,
                "train_hw": list(o.train_hw),
                "batch": o.batch,
                "epoch_seconds": round(o.epoch_s, 1),
            }
            for o in tried
        ],
    }
    return Plan(choices, ds, hw, estimates)


def _model_reason(best: _Option, tried: list[_Option], targets: Targets, fits: bool) -> str:
    at_scale = [o for o in tried if o.scale == best.scale]
    others = [o for o in tried if o.scale != best.scale]
    parts = [f"{o.label()} ~{_num(o.epoch_s)}s" for o in at_scale]
    text = f"per epoch, timed: {', '.join(parts)}"
    if others:
        text += f" (at x{best.scale:g}; larger scales did not fit)"
    if best.reason:
        return f"{best.reason}; {text}"
    if fits and any(
        o.epoch_s > best.epoch_s and o.epoch_s <= targets.epoch_seconds for o in at_scale
    ):
        return (
            f"lightest that fits {targets.epoch_seconds:.0f} s/epoch: the budget allows fewer "
            f"than {targets.min_epochs} epochs of the more capable ones; {text}"
        )
    if fits:
        return f"most capable that fits {targets.epoch_seconds:.0f} s/epoch; {text}"
    return (
        f"nothing fits {targets.epoch_seconds:.0f} s/epoch, cheapest taken; {text}; "
        f"consider a smaller data.resize"
    )


def corruption_recipe(model: str, knobs: dict) -> CorruptionRecipe:
    """The robust recipe for a model ``ROBUST_MIN_WIDTH`` or more wide (its ``width`` knob, or
    the knob's default), the mild one otherwise (and for a model without a width)."""
    try:
        defaults = get_entry(model).knobs()
    except PixelsegError:  # an unknown model fails later, where the trainer builds it
        defaults = {}
    width = knobs.get("width", defaults.get("width"))
    if isinstance(width, int) and width >= ROBUST_MIN_WIDTH:
        return ROBUST_CORRUPTIONS
    return MILD_CORRUPTIONS


def _augmentation(n_train: int) -> tuple[float, list[float], str]:
    if n_train < 500:
        return 15.0, [0.7, 1.4], f"{n_train} training images (< 500): stronger augmentation"
    if n_train > 5000:
        return 5.0, [0.9, 1.1], f"{n_train} training images (> 5000): light augmentation"
    return 10.0, [0.8, 1.25], f"{n_train} training images: default augmentation"


def _cache_choice(ds: DatasetFingerprint, hw: HardwareFingerprint) -> tuple[bool, str]:
    h, w = ds.median_hw
    size = (ds.n_train + ds.n_val) * h * w * DECODED_BYTES_PER_PIXEL
    limit = CACHE_MAX_BYTES if hw.ram_bytes is None else min(CACHE_MAX_BYTES, hw.ram_bytes / 4)
    workers = loader_workers(-1, 1) if not hw.is_gpu else 1
    if workers > 0:
        return False, (
            f"loader workers decode in parallel (and would each hold a copy); "
            f"decoded set ~{_num(size / 2**20)} MiB"
        )
    if size > limit:
        return False, f"decoded set ~{_num(size / 2**20)} MiB: too large to keep in memory"
    return True, (
        f"decoded set ~{_num(size / 2**20)} MiB fits in memory: no image decoding "
        f"after the first epoch"
    )


class MeasuredCosts:
    """``cost_fn`` for ``make_plan``: times each candidate once on this machine."""

    def __init__(
        self,
        num_classes: int,
        device_name: str,
        median_hw: tuple[int, int],
        data_s_per_image: float,
    ) -> None:
        self.device = pick_device(device_name)
        self.num_classes = num_classes
        self.data_s = data_s_per_image
        h, w = median_hw
        f = min(1.0, 512 / max(h, w))  # timed at most at this size (see measure_model_cost)
        self.size = (max(1, round(h * f)), max(1, round(w * f)))
        self.batch = 2 if self.device.type == "cpu" else 4
        self._cache: dict[str, ModelCost] = {}

    def __call__(self, model: str, knobs: dict) -> ModelCost:
        key = json.dumps([model, knobs], sort_keys=True)
        if key not in self._cache:
            cost = measure_model_cost(
                model,
                knobs,
                self.num_classes,
                self.device,
                self.size,
                self.batch,
                min_step_s=0.3 if self.device.type == "cpu" else 0.05,
            )
            cost.data_s_per_image = self.data_s if self.device.type == "cpu" else 0.0
            self._cache[key] = cost
        return self._cache[key]


def plan_for_config(
    cfg: RunConfig,
    fixed: dict | None = None,
    targets: Targets | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> Plan:
    """Fingerprint ``cfg.data.root`` and this machine (``cfg.train.device``) and make a plan."""
    d = cfg.data
    ds = fingerprint_dataset(d.root, d.format, d.train_split, d.val_split, progress=progress)
    hw = fingerprint_hardware(cfg.train.device)
    configure_threads(pick_device(cfg.train.device), 1, cfg.train.threads)
    log(f"planning: timing candidate models on {hw.device} (a few seconds)")
    data_s = measure_data_cost(open_split(d.root, d.train_split, d.format))
    costs = MeasuredCosts(ds.num_classes, cfg.train.device, ds.median_hw, data_s)
    return make_plan(ds, hw, costs, fixed, targets)


def is_unconfigured(overrides: list[str], chose_model: bool = False) -> bool:
    """No model options: ``chose_model`` is false (for ``pixelseg train``: no --model, --config,
    --resume or --no-plan) and no ``model.*`` override."""
    if chose_model:
        return False
    return not any(k.startswith("model.") or k == "model" for k in flat_keys(overrides))


def apply_plan_if_unconfigured(
    overrides: list[str],
    chose_model: bool = False,
    world_size: int = 1,
    log: Callable[[str], None] = print,
) -> tuple[list[str], Plan | None]:
    """For ``pixelseg train``: when the user chose no model, plan one and put the plan's
    overrides before the user's. ``world_size``: the number of training processes (torchrun's).
    Returns (overrides, plan or None)."""
    if not is_unconfigured(overrides, chose_model):
        return overrides, None
    if world_size > 1:
        # Each process would time the models itself and could plan differently.
        log(
            "self-configuration is off under torchrun: run `pixelseg plan --data DIR --save "
            "plan.yaml` once and train with --config plan.yaml"
        )
        return overrides, None
    cfg = load_config(None, overrides)
    if not cfg.data.root:
        return overrides, None  # the trainer names the missing key
    plan = plan_for_config(cfg, flat_keys(overrides), log=log)
    log(plan.table())
    log("(pass --model, --config or model.* to choose yourself; any key=value overrides the plan)")
    return plan.overrides() + overrides, plan
