"""What training costs here: timed steps of a model on random tensors, scaled to an epoch.

A step is timed at the smallest size that takes long enough to measure the model rather than
fixed overheads, and the cost is scaled by pixels: convolutions and row/column RNN sweeps are
linear in the number of pixels, and a full-size step of a wide U-Net would take twenty seconds
on a CPU. On CUDA the training memory per pixel is recorded too (for the batch size).

    cost = measure_model_cost("unet", {"width": 16}, 11, torch.device("cpu"), max_hw=(360, 480))
    cost.epoch_seconds(n_train=367, train_hw=(360, 480), n_val=101, val_hw=(360, 480), batch=4)

``MeasuredCosts`` is the planner's cost function: each candidate timed once on this machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..config import TrainConfig
from ..data.transforms import AugmentParams, TrainTransform
from ..engine.device import memory_format
from ..engine.finetune import freeze_encoder_layers
from ..models import create_model


@dataclass
class ModelCost:
    """Seconds per million input pixels of a training step (forward, backward, Adam step) and
    of evaluation (forward, no gradients); ``data_s_per_image`` is decoding + augmentation."""

    model: str
    knobs: dict
    train_s_per_mpix: float
    eval_s_per_mpix: float
    peak_bytes_per_mpix: float | None = None  # CUDA only: training memory per input megapixel
    data_s_per_image: float = 0.0
    calibration: tuple[int, int, int] = (2, 128, 128)  # batch, H, W the step was timed at

    def epoch_seconds(
        self,
        n_train: int,
        train_hw: tuple[int, int],
        n_val: int,
        val_hw: tuple[int, int],
        batch: int,
        max_steps: int | None = None,
    ) -> float:
        """One epoch: the training batches (as the loader drops the last partial one) plus
        a validation pass over every image."""
        steps = max(1, n_train // batch) if n_train >= batch else 1
        if max_steps:
            steps = min(steps, max_steps)
        train_mpix = steps * batch * train_hw[0] * train_hw[1] / 1e6
        val_mpix = n_val * val_hw[0] * val_hw[1] / 1e6
        return (
            train_mpix * self.train_s_per_mpix
            + steps * batch * self.data_s_per_image
            + val_mpix * self.eval_s_per_mpix
            + n_val * self.data_s_per_image / 2
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def calibration_sizes(
    max_hw: tuple[int, int], start_pixels: int = 128 * 128
) -> list[tuple[int, int]]:
    """Sizes of the aspect ratio of ``max_hw`` with 1x, 4x, 16x ... ``start_pixels``, up to
    ``max_hw`` itself (the last entry)."""
    h, w = max_hw
    sizes, pixels = [], start_pixels
    while pixels < h * w:
        f = (pixels / (h * w)) ** 0.5
        sizes.append((max(8, round(h * f)), max(8, round(w * f))))
        pixels *= 4
    return sizes + [(h, w)]


def measure_model_cost(
    name: str,
    knobs: dict,
    num_classes: int,
    device: torch.device,
    max_hw: tuple[int, int] = (128, 128),
    batch: int = 2,
    min_step_s: float = 0.3,
    repeats: int = 2,
    encoder_frozen_stride: int = TrainConfig.encoder_frozen_stride,
) -> ModelCost:
    """Seconds per megapixel of training and evaluation steps on random tensors.

    Small steps are dominated by fixed costs (kernel set-up, Python, optimizer), which would
    overstate a light model's cost at full size several times over; large steps of a heavy
    model take many seconds. So the step is timed at growing sizes (x4 pixels each time, up to
    ``max_hw``) until one takes ``min_step_s``, and that last timing is used. A pretrained
    encoder's first layers are frozen as ``train.encoder_frozen_stride`` will freeze them.
    """
    torch.manual_seed(0)
    # Timed as the trainer runs it: same memory format (channels-last is ~25% faster here).
    fmt = memory_format(device)
    model = create_model(name, num_classes, 3, load_weights=False, **knobs)
    freeze_encoder_layers(model, encoder_frozen_stride)
    model = model.to(device, memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    peak = None
    for size in calibration_sizes(max_hw):
        x = torch.randn(batch, 3, *size, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, num_classes, (batch, *size), device=device)

        def train_step(x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        model.train()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        train_s = _timed(train_step, repeats, device)
        if train_s >= min_step_s:
            break
    mpix = batch * size[0] * size[1] / 1e6
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / mpix
    model.eval()
    with torch.no_grad():
        eval_s = _timed(lambda: model(x), repeats, device)
    return ModelCost(
        name, dict(knobs), train_s / mpix, eval_s / mpix, peak, calibration=(batch, *size)
    )


def _timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: allocator, thread pool, cuDNN autotuning
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / repeats


def measure_data_cost(source, samples: int = 3) -> float:
    """Seconds to decode one training sample and augment it (default strengths), at its own
    size: the loader's share of an epoch when it runs in the training process (CPU). The
    median over the split's first few items; an upper bound when the plan then downscales."""
    transform = TrainTransform(AugmentParams())
    rng = np.random.default_rng(0)
    times = []
    for index in range(min(samples, len(source))):
        t = time.perf_counter()
        sample = source.load(index)
        transform(sample.image, sample.mask, rng)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) if times else 0.0


class MeasuredCosts:
    """The planner's ``cost_fn`` (``ladder.CostFn``): times each candidate once on ``device``
    (the training device), at the median image size capped at 512 px on the long side."""

    def __init__(
        self,
        num_classes: int,
        device: torch.device,
        median_hw: tuple[int, int],
        data_s_per_image: float,
        encoder_frozen_stride: int = TrainConfig.encoder_frozen_stride,
    ) -> None:
        self.device = device
        self.num_classes = num_classes
        self.data_s = data_s_per_image
        self.encoder_frozen_stride = encoder_frozen_stride
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
                encoder_frozen_stride=self.encoder_frozen_stride,
            )
            cost.data_s_per_image = self.data_s if self.device.type == "cpu" else 0.0
            self._cache[key] = cost
        return self._cache[key]
