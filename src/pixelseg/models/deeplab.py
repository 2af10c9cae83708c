"""DeepLabV3+-style model, from scratch: a residual encoder with dilated last stages, atrous
spatial pyramid pooling (ASPP) and a light decoder with one low-level skip connection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import build_encoder
from .knobs import (
    ACTIVATION,
    DECODER_STRIDE,
    DROPOUT,
    ENCODER,
    KERNEL_SIZE,
    NORM,
    PRETRAINED,
    WIDTH,
    Knob,
)
from .layers import ConvNormAct, FineDecoder, make_activation, resize_to
from .registry import register_model


class ResidualBlock(nn.Module):
    """Basic residual block (two convs); a 1x1 projection when the shape changes."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int,
        stride: int,
        dilation: int,
        norm: str,
        activation: str,
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(
            cin, cout, kernel_size, stride, dilation, norm=norm, activation=activation
        )
        # No activation before the sum: it comes after the shortcut is added.
        self.conv2 = ConvNormAct(cout, cout, kernel_size, 1, dilation, norm=norm, activation=None)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else ConvNormAct(cin, cout, 1, stride, norm=norm, activation=None)
        )
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))  # (B, cout, H/s, W/s)


class ImagePooling(nn.Module):
    """ASPP's image-level branch: global average -> 1x1 conv -> broadcast back.

    No batch norm here: on a 1x1 map it would fail (or be meaningless) for batch size 1.
    """

    def __init__(self, cin: int, cout: int, activation: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(F.adaptive_avg_pool2d(x, 1)))  # (B, cout, 1, 1)
        return y.expand(-1, -1, *x.shape[-2:])  # (B, cout, h, w)


class ASPP(nn.Module):
    """1x1 branch + one dilated 3x3 branch per rate + image pooling, fused by a 1x1 conv."""

    def __init__(
        self,
        cin: int,
        cout: int,
        dilations: tuple[int, ...],
        norm: str,
        activation: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvNormAct(cin, cout, 1, norm=norm, activation=activation)]
            + [
                ConvNormAct(cin, cout, 3, dilation=d, norm=norm, activation=activation)
                for d in dilations
            ]
            + [ImagePooling(cin, cout, activation)]
        )
        self.project = nn.Sequential(
            ConvNormAct(cout * len(self.branches), cout, 1, norm=norm, activation=activation),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))  # (B, cout, h, w)


@register_model(
    "deeplab",
    "DeepLabV3+-style: residual encoder, ASPP (dilated pyramid), light decoder with a skip",
    knobs=[
        WIDTH.but(help="stem channels; the stages have 2, 4, 8 and 8 times as many"),
        Knob(
            "output_stride",
            int,
            16,
            choices=(8, 16),
            help="encoder stride; 8 dilates the last two stages instead (~4x their cost)",
        ),
        Knob(
            "dilations",
            tuple[int, ...],
            (6, 12, 18),
            low=1,
            help="ASPP rates at output stride 16 (doubled at 8); smaller on small images",
        ),
        KERNEL_SIZE,
        ACTIVATION,
        NORM,
        DROPOUT.but(default=0.1, help="dropout after the ASPP projection"),
        DECODER_STRIDE,
        ENCODER,
        PRETRAINED,
    ],
)
class DeepLab(nn.Module):
    """DeepLabV3+ in spirit, trained from scratch.

    Encoder: a stride-2 stem, then residual stages with ``width * (2, 4, 8, 8)`` channels at
    strides 4, 8, 16, 16. With ``output_stride=8`` the last two stages keep stride 8 and dilate
    instead (2 and 4), which costs ~4x more in those stages but keeps finer detail.

    ``dilations`` are the ASPP rates at output stride 16 (DeepLabV3 uses (6, 12, 18) on 513 px
    crops); at ``output_stride=8`` they are doubled so the pyramid covers the same field of view
    in pixels. At 360x480 the stride-16 map is 23x30, so 18 already spans most of it; on small
    images prefer smaller rates, e.g. ``dilations=[2,4,6]``.

    Decoder: the ASPP output is upsampled to stride 4, concatenated with a 1x1-reduced copy of
    the stride-4 features, refined by two convs and classified; logits are resized to the input.
    ``decoder_stride=2`` adds one more such step with the stem's stride-2 features before
    classifying: on small images (64 px is 16 px at stride 4) it keeps thin parts and edges;
    ``decoder_stride=1`` adds a last, narrow step at full resolution (see ``FineDecoder``).
    With ``encoder`` set, a pretrained encoder replaces the residual one, atrous from
    ``output_stride`` on (its deepest stages keep that stride and dilate), and its stride-4 and
    stride-2 features are the decoder's skips; ASPP and decoder are as above.
    Any H x W works: strided convs round up and every merge resizes to the skip's exact size.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        width: int = 32,
        output_stride: int = 16,
        dilations: tuple[int, ...] = (6, 12, 18),
        kernel_size: int = 3,
        activation: str = "relu",
        norm: str = "batch",
        dropout: float = 0.1,
        decoder_stride: int = 4,
        encoder: str = "native",
        pretrained: str = "imagenet",
    ) -> None:
        super().__init__()
        dilations = (dilations,) if isinstance(dilations, int) else tuple(dilations)
        w = width
        kw = dict(kernel_size=kernel_size, norm=norm, activation=activation)
        rates = tuple(d * (16 // output_stride) for d in dilations)
        low = max(8, (3 * w) // 2)
        self.encoder = build_encoder(encoder, pretrained, in_channels, output_stride)
        if self.encoder is not None:
            ch = self.encoder.channels
            self.aspp = ASPP(ch[-1], 4 * w, rates, norm, activation, dropout)
            self.reduce_low = ConvNormAct(
                ch[self.encoder.feature(4)], low, 1, norm=norm, activation=activation
            )
            stem_channels = ch[self.encoder.feature(2)]
        else:
            stem_channels = w
            self._build_native(in_channels, w, output_stride, rates, low, dropout, **kw)
        self.decoder = nn.Sequential(
            ConvNormAct(4 * w + low, 2 * w, **kw),
            ConvNormAct(2 * w, 2 * w, **kw),
        )
        self.fine = FineDecoder(decoder_stride, 2 * w, stem_channels, in_channels, **kw)
        self.head = nn.Conv2d(self.fine.out_channels, num_classes, 1)

    def _build_native(
        self,
        in_channels: int,
        w: int,
        output_stride: int,
        rates: tuple[int, ...],
        low: int,
        dropout: float,
        kernel_size: int,
        norm: str,
        activation: str,
    ) -> None:
        kw = dict(kernel_size=kernel_size, norm=norm, activation=activation)
        self.stem = nn.Sequential(
            ConvNormAct(in_channels, w, kernel_size, stride=2, norm=norm, activation=activation),
            ConvNormAct(w, w, **kw),
        )
        # Stages 3 and 4: strided (os16) or dilated (os8); the dilation keeps the receptive
        # field of the strided version.
        s3, d3, d4 = (2, 1, 2) if output_stride == 16 else (1, 2, 4)
        self.stage1 = ResidualBlock(w, 2 * w, stride=2, dilation=1, **kw)  # stride 4
        self.stage2 = ResidualBlock(2 * w, 4 * w, stride=2, dilation=1, **kw)  # stride 8
        self.stage3 = ResidualBlock(4 * w, 8 * w, stride=s3, dilation=d3, **kw)  # 16 or 8
        self.stage4 = ResidualBlock(8 * w, 8 * w, stride=1, dilation=d4, **kw)
        self.aspp = ASPP(8 * w, 4 * w, rates, norm, activation, dropout)
        self.reduce_low = ConvNormAct(2 * w, low, 1, norm=norm, activation=activation)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(stride-2, stride-4, deepest) features."""
        if self.encoder is not None:
            features = self.encoder(x)
            e = self.encoder
            return features[e.feature(2)], features[e.feature(4)], features[-1]
        x = stem = self.stem(x)  # (B, w, H/2, W/2)
        low = self.stage1(x)  # (B, 2w, H/4, W/4)
        x = self.stage2(low)  # (B, 4w, H/8, W/8)
        return stem, low, self.stage4(self.stage3(x))  # deepest: (B, 8w, H/os, W/os)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size, image = x.shape[-2:], x
        stem, low, x = self._encode(x)
        x = self.aspp(x)  # (B, 4w, H/os, W/os)
        x = resize_to(x, low.shape[-2:])  # (B, 4w, H/4, W/4)
        x = self.decoder(torch.cat([x, self.reduce_low(low)], dim=1))  # (B, 2w, H/4, W/4)
        x = self.fine(x, stem, image)  # (B, C, H/decoder_stride, W/decoder_stride)
        return resize_to(self.head(x), size)  # (B, num_classes, H, W)
