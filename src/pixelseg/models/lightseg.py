"""LightSeg: a lightweight CPU segmenter built from MobileNetV2 inverted bottlenecks.

Aim: the best accuracy per CPU-second. Almost all spatial filtering is depthwise (9 MACs per
channel and pixel instead of 9*C), full-resolution work is limited to one stride-2 stem conv,
the deep stage runs at 1/16 with dilations for context, and the decoder works at 1/4 with one
skip connection (ENet / MobileNet / LR-ASPP spirit). At 360x480 it needs well under a tenth of
the default U-Net's FLOPs (a test checks this). ``context="renet"`` makes it a CNN-RNN hybrid:
ReNet row/column sweeps over the 1/16 features, where a sweep is only ~30 steps long.
"""

from __future__ import annotations

import torch
from torch import nn

from .encoders import build_encoder
from .knobs import (
    ACTIVATION,
    CONTEXT,
    DECODER_STRIDE,
    ENCODER,
    KERNEL_SIZE,
    NORM,
    PRETRAINED,
    WIDTH,
    Knob,
)
from .layers import ConvNormAct, FineDecoder, SkipRefine, make_norm, resize_to
from .registry import register_model
from .renet import recurrent_context


class InvertedResidual(nn.Module):
    """1x1 expand -> depthwise kxk (stride/dilation) -> 1x1 linear projection (+ residual).

    The projection has no activation: a ReLU on the narrow bottleneck would destroy
    information (MobileNetV2's "linear bottleneck").
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        expansion: int = 4,
        kernel_size: int = 3,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvNormAct(cin, hidden, 1, norm=norm, activation=activation))
        layers += [
            ConvNormAct(
                hidden,
                hidden,
                kernel_size,
                stride,
                dilation,
                groups=hidden,
                norm=norm,
                activation=activation,
            ),
            nn.Conv2d(hidden, cout, 1, bias=norm == "none"),
            make_norm(norm, cout),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)  # (B, cout, H/stride, W/stride)
        return x + y if self.residual else y


class ContextGate(nn.Module):
    """LR-ASPP-style head: a 1x1 branch gated per channel by the globally pooled features.

    Gives image-level context for the price of two 1x1 convs; the gate has no norm so that
    batch size 1 works.
    """

    def __init__(self, cin: int, cout: int, norm: str, activation: str) -> None:
        super().__init__()
        self.branch = ConvNormAct(cin, cout, 1, norm=norm, activation=activation)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) * self.gate(x)  # (B, cout, h, w)


@register_model(
    "lightseg",
    "Lightweight CPU model: inverted-bottleneck encoder, gated context, 1/4 decoder (<1 GFLOP)",
    knobs=[
        WIDTH.but(
            default=16,
            help="stem channels; the stages have 1.5, 2 and 4 times as many (with an encoder: "
            "the decoder has 2 times as many)",
        ),
        Knob(
            "expansion", int, 4, low=1, help="inverted bottleneck's expansion ratio (native only)"
        ),
        KERNEL_SIZE.but(help="depthwise kernel (5 sees more for little cost)"),
        ACTIVATION,
        NORM,
        DECODER_STRIDE,
        CONTEXT.but(
            help="renet: recurrent global context on the deepest features, before the gate"
        ),
        ENCODER,
        PRETRAINED,
    ],
)
class LightSeg(nn.Module):
    """Stem (stride 2) -> inverted-bottleneck stages at strides 4, 8, 16 with
    ``width * (1.5, 2, 4)`` channels (the last stage dilated 1, 2, 4) -> gated global context ->
    upsample to 1/4, concat the stride-4 features, one depthwise-separable conv -> classifier.

    ``width`` is the stem's channel count and scales everything; ``expansion`` is the inverted
    bottleneck's expansion ratio; ``kernel_size`` is the depthwise kernel (5 sees more for ~3x
    the depthwise cost, which is small next to the 1x1 convs). ``decoder_stride=2`` adds a
    second skip, from the stem, and classifies at 1/2 instead of 1/4: on small images (a 64 px
    image is 16 px at 1/4) it recovers thin parts and boundaries for ~30% more FLOPs;
    ``decoder_stride=1`` adds a narrow full-resolution step (see ``FineDecoder``).
    ``context="renet"`` puts a ``RecurrentContext`` (one bidirectional GRU ReNet layer, as in
    U-Net's) between the 1/16 stage and the gate: the pooled gate sees the image as one
    vector, the sweeps give each position its own view of its row and column.
    With ``encoder`` set (a pretrained EfficientNet-Lite), the encoder's features at strides 2
    to 32 replace the stem and stages: the gate works on the stride-32 features and the
    decoder climbs an FPN-like ladder of separable ``SkipRefine`` steps through the stride-16,
    8 and 4 features (``2 * width`` channels), then ``FineDecoder`` as above.
    Any H x W works.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        width: int = 16,
        expansion: int = 4,
        kernel_size: int = 3,
        activation: str = "relu",
        norm: str = "batch",
        decoder_stride: int = 4,
        context: str = "none",
        encoder: str = "native",
        pretrained: str = "imagenet",
    ) -> None:
        super().__init__()
        c1, c2, c3 = max(1, (3 * width) // 2), 2 * width, 4 * width
        na = dict(norm=norm, activation=activation)
        self.encoder = build_encoder(encoder, pretrained, in_channels)
        if self.encoder is not None:
            ch = self.encoder.channels
            self.recurrent = recurrent_context(context, ch[-1], norm, activation)
            self.context = ContextGate(ch[-1], c2, norm, activation)
            self.skips = [self.encoder.feature(s) for s in (16, 8, 4)]
            self.ladder = nn.ModuleList(
                SkipRefine(c2, ch[i], c2, kernel_size, separable=True, **na) for i in self.skips
            )
            stem = ch[self.encoder.feature(2)]
            self.fine = FineDecoder(
                decoder_stride, c2, stem, in_channels, kernel_size, separable=True, **na
            )
            self.head = nn.Conv2d(self.fine.out_channels, num_classes, 1)
            return
        kw = dict(expansion=expansion, kernel_size=kernel_size, norm=norm, activation=activation)
        self.stem = ConvNormAct(in_channels, width, 3, stride=2, norm=norm, activation=activation)
        self.stage1 = nn.Sequential(
            InvertedResidual(width, c1, stride=2, **kw),
            InvertedResidual(c1, c1, **kw),
        )
        self.stage2 = nn.Sequential(
            InvertedResidual(c1, c2, stride=2, **kw),
            InvertedResidual(c2, c2, **kw),
            InvertedResidual(c2, c2, **kw),
        )
        # Dilations grow the receptive field at 1/16 without another (lossy) downsampling.
        self.stage3 = nn.Sequential(
            InvertedResidual(c2, c3, stride=2, **kw),
            InvertedResidual(c3, c3, dilation=2, **kw),
            InvertedResidual(c3, c3, dilation=4, **kw),
        )
        self.recurrent = recurrent_context(context, c3, norm, activation)
        self.context = ContextGate(c3, c2, norm, activation)
        self.decoder = SkipRefine(c2, c1, c2, kernel_size, separable=True, **na)
        self.fine = FineDecoder(
            decoder_stride, c2, width, in_channels, kernel_size, separable=True, **na
        )
        self.head = nn.Conv2d(self.fine.out_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            return self._forward_encoder(x)
        size, image = x.shape[-2:], x
        stem = self.stem(x)  # (B, w, H/2, W/2)
        low = self.stage1(stem)  # (B, 1.5w, H/4, W/4)
        deep = self.recurrent(self.stage3(self.stage2(low)))  # (B, 4w, H/16, W/16)
        x = self.context(deep)  # (B, 2w, H/16, W/16)
        x = self.decoder(x, low)  # (B, 2w, H/4, W/4)
        x = self.fine(x, stem, image)  # (B, C, H/decoder_stride, W/decoder_stride)
        return resize_to(self.head(x), size)  # (B, num_classes, H, W)

    def _forward_encoder(self, image: torch.Tensor) -> torch.Tensor:
        features = self.encoder(image)  # strides 2 .. 32
        x = self.context(self.recurrent(features[-1]))  # (B, 2w, H/32, W/32)
        for refine, i in zip(self.ladder, self.skips):
            x = refine(x, features[i])  # (B, 2w, H/s, W/s) for s = 16, 8, 4
        x = self.fine(x, features[self.encoder.feature(2)], image)  # (B, C, H/ds, W/ds)
        return resize_to(self.head(x), image.shape[-2:])  # (B, num_classes, H, W)
