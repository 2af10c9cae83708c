"""The ladder search: the model and the training resolution that fit the time budget.

Candidate models are timed (``cost.py``) from the most capable down, at full resolution first,
then at 3/4, 1/2, 3/8, 1/4 of it (never below ``Targets.min_side`` on the short side); the
first that fits is taken, because resolution is kept before capacity (thin and small classes
vanish when downscaled, and a light model still learns them):

- a pretrained rung (``Rung.min_epochs`` set) is judged by epochs alone: taken at the largest
  scale where the budget gives it that many, since fine-tuning converges in far fewer epochs
  than learning features from scratch;
- a from-scratch rung must fit ``Targets.epoch_seconds`` per epoch and get at least
  ``Targets.min_epochs`` from the budget; with a shorter budget the lightest that fits at that
  scale is taken, for the most epochs;
- when nothing fits, the cheapest option measured.

Uniformly sized images are downscaled with ``data.resize``; images of varying sizes are
cropped instead (``data.crop_size``), which keeps their aspect ratio. The measurements behind
the ladders are in docs/results.md ("CamVid on a time budget").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..models import list_models
from ..models.encoders.pretrained import weights_installed
from .constraints import Constraints
from .cost import ModelCost
from .fingerprint import DatasetFingerprint, HardwareFingerprint
from .plan_rules import choose_batch, short_number, starts_pretrained


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
MAX_TRAIN_SIDE = {"cpu": 512, "gpu": 1024}  # larger images are trained on crops of this

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


@dataclass(frozen=True)
class Geometry:
    """How images are sized for training at one scale of the median size."""

    resize: list[int] | None
    crop: list[int] | None
    train_hw: tuple[int, int]
    val_hw: tuple[int, int]
    reason: str


@dataclass
class Candidate:
    """One (model, scale) the search timed."""

    model: str
    knobs: dict
    scale: float
    geometry: Geometry
    batch: int
    batch_reason: str
    epoch_s: float
    reason: str = ""  # why the ladder took it, when a rule other than the epoch time did

    def label(self) -> str:
        knobs = ",".join(f"{k}={v}" for k, v in self.knobs.items())
        return f"{self.model}({knobs})" if knobs else self.model


@dataclass
class SearchResult:
    best: Candidate
    tried: list[Candidate]


def geometry_at(
    ds: DatasetFingerprint, hw: HardwareFingerprint, scale: float, fixed: Constraints
) -> Geometry:
    """The resize and crop at ``scale`` of the median size; the user's, where they set them."""
    h, w = ds.median_hw
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    cap = MAX_TRAIN_SIDE["gpu" if hw.is_gpu else "cpu"]
    reason = ""
    if fixed.resize is not None:
        resize = fixed.resize.value
    else:
        resize = None
        if scale < 1 and not ds.sizes_vary:
            resize = [sh, sw]
            reason = f"downscaled x{scale:g} from {h}x{w} to fit the time budget"
    if fixed.crop_size is not None:
        crop = fixed.crop_size.value
    else:
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
    return Geometry(resize, crop, train_hw, val_hw, reason)


def scales_to_try(ds: DatasetFingerprint, targets: Targets, fixed: Constraints) -> list[float]:
    if fixed.resize is not None:
        return [1.0]
    short = min(ds.median_hw)
    floor = min(short, targets.min_side)
    return [s for s in SCALES if short * s >= floor]


def ladder_for(hw: HardwareFingerprint, fixed: Constraints) -> list[Rung]:
    """The rungs to climb: the user's model alone when they named one (``pixelseg plan ...
    model.name=X`` plans around it), else this machine's ladder, less the models not
    registered and the pretrained ones whose weights are not installed."""
    registered = {e.name for e in list_models()}
    if fixed.model is not None:
        knobs = fixed.knobs
        return [
            Rung(fixed.model, knobs, PRETRAINED_MIN_EPOCHS if starts_pretrained(knobs) else None)
        ]
    ladder = [
        r
        for r in (GPU_LADDER if hw.is_gpu else CPU_LADDER)
        if r.model in registered and (r.encoder is None or weights_installed(r.encoder))
    ]
    return ladder or [Rung(sorted(registered)[0], {})]


def search_ladder(
    ds: DatasetFingerprint,
    hw: HardwareFingerprint,
    fixed: Constraints,
    targets: Targets,
    cost_fn: CostFn,
) -> SearchResult:
    """The first (scale, model) that fits (see the module docstring), and every one timed."""
    ladder = ladder_for(hw, fixed)
    tried: list[Candidate] = []
    total_s = targets.total_seconds(hw)
    for scale in scales_to_try(ds, targets, fixed):
        geo = geometry_at(ds, hw, scale, fixed)
        fitting: list[Candidate] = []
        for rung in ladder:
            cost = cost_fn(rung.model, rung.knobs)
            if fixed.batch_size is not None:
                batch, batch_reason = fixed.batch_size, "yours"
            else:
                batch, batch_reason = choose_batch(cost, geo.train_hw, ds.n_train, hw)
            sec = cost.epoch_seconds(ds.n_train, geo.train_hw, ds.n_val, geo.val_hw, batch)
            option = Candidate(rung.model, rung.knobs, scale, geo, batch, batch_reason, sec)
            tried.append(option)
            epochs = total_s / max(sec, 1e-3)
            if rung.min_epochs is not None:  # pretrained: judged by the epochs it gets
                if epochs >= rung.min_epochs:
                    option.reason = (
                        f"pretrained encoder: the budget gives it ~{epochs:.0f} epochs at x"
                        f"{scale:g}, >= the {rung.min_epochs} that fine-tuning needs"
                    )
                    return SearchResult(option, tried)
            elif sec <= targets.epoch_seconds:
                if epochs >= targets.min_epochs:
                    return SearchResult(option, tried)
                fitting.append(option)
        if fitting:  # a short budget: the lightest model that fits, for the most epochs
            return SearchResult(fitting[-1], tried)
    # Nothing fits: the cheapest option measured, and the reason says so.
    return SearchResult(min(tried, key=lambda o: o.epoch_s), tried)


def fits_budget(best: Candidate, targets: Targets) -> bool:
    return best.epoch_s <= targets.epoch_seconds or bool(best.reason)


def model_reason(result: SearchResult, targets: Targets) -> str:
    """Why the ladder took its model: the epoch times it measured at the chosen scale."""
    best, tried = result.best, result.tried
    fits = fits_budget(best, targets)
    at_scale = [o for o in tried if o.scale == best.scale]
    others = [o for o in tried if o.scale != best.scale]
    parts = [f"{o.label()} ~{short_number(o.epoch_s)}s" for o in at_scale]
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
