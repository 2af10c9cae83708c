"""U-Net: the default CNN. Every knob of the seed (kernel size, depth, activation) is exposed.

``context="renet"`` adds recurrent global context (ReNet row/column sweeps) at the bottleneck,
so the same backbone can be compared with and without it.
"""

from __future__ import annotations

import torch
from torch import nn

from .knobs import ACTIVATION, CONTEXT, DROPOUT, KERNEL_SIZE, NORM, WIDTH, Knob
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
            help="resolution levels (depth - 1 poolings)",
        ),
        KERNEL_SIZE,
        ACTIVATION,
        NORM,
        DROPOUT.but(help="dropout after the bottleneck"),
        CONTEXT.but(help="renet: recurrent global context at the bottleneck"),
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
    ) -> None:
        super().__init__()
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
