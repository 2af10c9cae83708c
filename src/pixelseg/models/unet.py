"""U-Net: the default CNN. Every knob of the seed (kernel size, depth, activation) is exposed.

``context="renet"`` adds recurrent global context (ReNet row/column sweeps) at the bottleneck,
so the same backbone can be compared with and without it.
"""

from __future__ import annotations

import torch
from torch import nn

from .encoders import build_encoder
from .knobs import (
    ACTIVATION,
    CONTEXT,
    DROPOUT,
    ENCODER,
    KERNEL_SIZE,
    NORM,
    PRETRAINED,
    WIDTH,
    Knob,
)
from .layers import ConvNormAct, resize_to
from .registry import register_model
from .renet import recurrent_context


class DoubleConv(nn.Sequential):
    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int,
        norm: str,
        activation: str,
        dropout: float = 0.0,
    ) -> None:
        layers = [
            ConvNormAct(cin, cout, kernel_size, norm=norm, activation=activation),
            ConvNormAct(cout, cout, kernel_size, norm=norm, activation=activation),
        ]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


@register_model(
    "unet",
    "U-Net encoder-decoder with skip connections (the default CNN)",
    knobs=[
        WIDTH.but(help="channels of the first level, doubled at each level below"),
        Knob(
            "depth",
            int,
            4,
            low=1,
            search={"low": 2, "high": 4},
            help="resolution levels (depth - 1 poolings); native encoder only",
        ),
        KERNEL_SIZE,
        ACTIVATION,
        NORM,
        DROPOUT.but(help="dropout after the bottleneck"),
        CONTEXT.but(help="renet: recurrent global context at the bottleneck"),
        ENCODER,
        PRETRAINED,
    ],
)
class UNet(nn.Module):
    """U-Net with ``depth`` resolution levels; level i has ``width * 2**i`` channels.

    Any H x W works: the decoder upsamples to each skip's exact size, so odd sizes need no
    padding, and the logits come back at the input's size.

    ``context="renet"`` inserts a ``RecurrentContext`` at the bottleneck: one bidirectional
    GRU ReNet layer (hidden = half the bottleneck channels) whose output is concatenated with
    the bottleneck and projected back to its channels by a 1x1 conv. Every bottleneck position
    then sees the whole image, which the convolutions alone reach only at large depth.

    With ``encoder`` set, the encoder's features at strides 2 to 32 are the skips and the
    stride-32 one the bottleneck; the decoder level at stride ``2**(i+1)`` has
    ``width * 2**i`` channels, and the logits, classified at stride 2, are resized to the input.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        width: int = 32,
        depth: int = 4,
        kernel_size: int = 3,
        activation: str = "relu",
        norm: str = "batch",
        dropout: float = 0.0,
        context: str = "none",
        encoder: str = "native",
        pretrained: str = "imagenet",
    ) -> None:
        super().__init__()
        self.encoder = build_encoder(encoder, pretrained, in_channels)
        if self.encoder is not None:
            self._build_encoder_decoder(num_classes, width, kernel_size, norm, activation, context)
            self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
            return
        chans = [width * 2**i for i in range(depth)]
        self.encoders = nn.ModuleList()
        cin = in_channels
        for i, c in enumerate(chans):
            self.encoders.append(
                DoubleConv(cin, c, kernel_size, norm, activation, dropout if i == depth - 1 else 0)
            )
            cin = c
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.context = recurrent_context(context, chans[-1], norm, activation)
        self.decoders = nn.ModuleList()
        for c_skip, c_deep in zip(reversed(chans[:-1]), reversed(chans[1:])):
            self.decoders.append(DoubleConv(c_skip + c_deep, c_skip, kernel_size, norm, activation))
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def _build_encoder_decoder(
        self, num_classes: int, width: int, kernel_size: int, norm: str, act: str, context: str
    ) -> None:
        enc_ch = self.encoder.channels
        self.context = recurrent_context(context, enc_ch[-1], norm, act)
        self.decoders = nn.ModuleList()
        cin = enc_ch[-1]
        for i in reversed(range(len(enc_ch) - 1)):  # skips from deep to shallow
            cout = width * 2**i
            self.decoders.append(DoubleConv(cin + enc_ch[i], cout, kernel_size, norm, act))
            cin = cout
        self.head = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            return self._forward_encoder(x)
        size = x.shape[-2:]
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x if i == 0 else self.pool(x))  # (B, width*2^i, H/2^i, W/2^i)
            skips.append(x)
        x = self.context(skips.pop())  # (B, width*2^(depth-1), H/2^(depth-1), W/2^(depth-1))
        for dec in self.decoders:
            skip = skips.pop()
            x = resize_to(x, skip.shape[-2:])
            x = dec(torch.cat([skip, x], dim=1))  # (B, C_skip, H_skip, W_skip)
        return resize_to(self.head(x), size)  # (B, num_classes, H, W)

    def _forward_encoder(self, image: torch.Tensor) -> torch.Tensor:
        skips = self.encoder(image)  # strides 2 .. 32
        x = self.dropout(self.context(skips.pop()))  # (B, C_32, H/32, W/32)
        for dec in self.decoders:
            skip = skips.pop()
            x = resize_to(x, skip.shape[-2:])
            x = dec(torch.cat([skip, x], dim=1))  # (B, width * 2^i, H/2^(i+1), W/2^(i+1))
        return resize_to(self.head(x), image.shape[-2:])  # (B, num_classes, H, W)
