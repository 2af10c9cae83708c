"""The planning rules: small functions of the dataset and machine facts (fingerprint.py) and
of the model the ladder chose (ladder.py), each returning its value and the reason for it.
The measurements behind the numbers are in docs/results.md ("CamVid on a time budget",
"Robust training")."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..data.loader import loader_workers
from ..errors import PixelsegError
from ..models import get_entry
from .cost import ModelCost
from .fingerprint import DatasetFingerprint, HardwareFingerprint

CPU_BATCH_PIXELS = 768_000  # ~4 CamVid images (360x480) per batch
IMBALANCE_RATIO = 10.0
CACHE_MAX_BYTES = 2 * 2**30
DECODED_BYTES_PER_PIXEL = 3 + 8  # uint8 RGB image + int64 mask
MIN_EPOCHS, MAX_EPOCHS = 10, 200

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
# points, and on a 24-wide one the robust recipe cost none (docs/results.md, Robust training).
ROBUST_MIN_WIDTH = 24
ROBUST_CORRUPTIONS = CorruptionRecipe(
    0.6,
    0.2,
    4,
    f"robust recipe for a model >= {ROBUST_MIN_WIDTH} wide: most corruption while the features "
    "form (p 0.6 falling to 0.2); it holds unseen corruptions at no clean cost "
    "(see docs/results.md)",
)
MILD_CORRUPTIONS = CorruptionRecipe(
    0.25,
    None,
    3,
    f"mild recipe for a model < {ROBUST_MIN_WIDTH} wide: stronger ones cost it ~2 clean points "
    "(see docs/results.md)",
)
# A pretrained encoder brings ImageNet's robustness with it: under the robust recipe and the
# small-data augmentation the CamVid plan under-fitted (train mIoU ~ val at 0.69), and the mild
# recipe with the default augmentation scored 0.705 (docs/pretrained.md, Results).
PRETRAINED_CORRUPTIONS = replace(
    MILD_CORRUPTIONS,
    reason="mild recipe for a pretrained encoder: the robust one kept the CamVid plan "
    "under-fitting; it still holds ~0.79 of clean under unseen "
    "corruptions (see docs/pretrained.md)",
)


def starts_pretrained(knobs: Mapping) -> bool:
    """Whether a model with these knobs starts from pretrained encoder weights (an encoder
    other than ``native``, and ``pretrained`` not ``none``)."""
    return knobs.get("encoder", "native") != "native" and knobs.get("pretrained") != "none"


def short_number(x: float) -> str:
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
    """On CPU the largest power of two up to 8 within ``CPU_BATCH_PIXELS`` (throughput barely
    changes with the batch there, and more steps per epoch help training from scratch); on
    CUDA the largest up to 32 whose measured training memory fits in half of the GPU. Either
    way at least 8 optimizer steps per epoch."""
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


def choose_epochs(
    n_train: int, batch: int, epoch_s: float, total_s: float, steps_wanted: int
) -> tuple[int, str]:
    """Enough optimizer steps (``steps_wanted``), capped by the budget, within [10, 200]: a
    first guess, which the trainer re-fits to the measured epoch time."""
    steps = max(1, n_train // batch)
    by_time = max(1, int(total_s // max(epoch_s, 1e-3)))
    by_steps = math.ceil(steps_wanted / steps)
    epochs = int(min(MAX_EPOCHS, max(MIN_EPOCHS, min(by_time, by_steps))))
    return epochs, (
        f"first guess: {steps_wanted} optimizer steps at {steps}/epoch = {by_steps} "
        f"epochs; the {total_s / 60:.0f} min budget allows {by_time}; kept within "
        f"[{MIN_EPOCHS}, {MAX_EPOCHS}]"
    )


def choose_class_weights(ds: DatasetFingerprint) -> tuple[str | None, str]:
    """Inverse-square-root frequency weights when the commonest class has more than
    ``IMBALANCE_RATIO`` times the pixels of the rarest; none otherwise."""
    ratio, rare, common = ds.imbalance()
    names = ds.class_names
    if ratio > IMBALANCE_RATIO:
        return "sqrt", (
            f"imbalanced: '{names[common]}' has {ratio:.0f}x the pixels of '{names[rare]}' "
            f"(> {IMBALANCE_RATIO:g}x): inverse-sqrt frequency weights (on CamVid val they "
            "beat median-frequency weights by 3 mIoU points, see bench/imbalance.py)"
        )
    return None, f"balanced enough: at most {ratio:.1f}x between classes (<= {IMBALANCE_RATIO:g}x)"


def choose_augmentation(n_train: int, pretrained: bool = False) -> tuple[float, list[float], str]:
    """(rotation, scale range, reason): stronger for small datasets, lighter for large ones. A
    pretrained encoder gets no stronger than the default: its features need less help, and on
    CamVid (367 images) the stronger setting left it under-fitting."""
    if n_train > 5000:
        return 5.0, [0.9, 1.1], f"{n_train} training images (> 5000): light augmentation"
    if n_train < 500 and pretrained:
        why = (
            "default augmentation (stronger left the CamVid plan under-fitting, see pretrained.md)"
        )
        return 10.0, [0.8, 1.25], f"{n_train} training images, pretrained encoder: {why}"
    if n_train < 500:
        return 15.0, [0.7, 1.4], f"{n_train} training images (< 500): stronger augmentation"
    return 10.0, [0.8, 1.25], f"{n_train} training images: default augmentation"


def corruption_recipe(model: str, knobs: dict) -> CorruptionRecipe:
    """The mild recipe for a pretrained encoder; otherwise the robust recipe for a model
    ``ROBUST_MIN_WIDTH`` or more wide (its ``width`` knob, or the knob's default), the mild one
    for a narrower model (and for a model without a width)."""
    if starts_pretrained(knobs):
        return PRETRAINED_CORRUPTIONS
    try:
        defaults = get_entry(model).knobs()
    except PixelsegError:  # an unknown model fails later, where the trainer builds it
        defaults = {}
    width = knobs.get("width", defaults.get("width"))
    if isinstance(width, int) and width >= ROBUST_MIN_WIDTH:
        return ROBUST_CORRUPTIONS
    return MILD_CORRUPTIONS


def choose_cache(ds: DatasetFingerprint, hw: HardwareFingerprint) -> tuple[bool, str]:
    """Decoded images kept in memory when the loader runs in the training process and the
    decoded dataset takes less than 2 GiB and a quarter of the memory."""
    h, w = ds.median_hw
    size = (ds.n_train + ds.n_val) * h * w * DECODED_BYTES_PER_PIXEL
    limit = CACHE_MAX_BYTES if hw.ram_bytes is None else min(CACHE_MAX_BYTES, hw.ram_bytes / 4)
    workers = loader_workers(-1, 1) if not hw.is_gpu else 1
    if workers > 0:
        return False, (
            f"loader workers decode in parallel (and would each hold a copy); "
            f"decoded set ~{short_number(size / 2**20)} MiB"
        )
    if size > limit:
        return False, f"decoded set ~{short_number(size / 2**20)} MiB: too large to keep in memory"
    return True, (
        f"decoded set ~{short_number(size / 2**20)} MiB fits in memory: no image decoding "
        f"after the first epoch"
    )
