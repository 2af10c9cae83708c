"""ReSeg (Visin et al., 2016): a small CNN encoder, ReNet layers for global context, and a
learned upsampling decoder. The recurrent pieces live in ``renet.py``."""

from __future__ import annotations

import torch
from torch import nn

from .encoders import Encoder, build_encoder
from .knobs import ACTIVATION, ENCODER, KERNEL_SIZE, NORM, PRETRAINED, WIDTH, Knob
from .layers import ConvNormAct, make_activation, make_norm, pad_to_multiple
from .registry import register_model
from .renet import CELL, HIDDEN_SIZE, NUM_LAYERS, RenetLayer


class UpBlock(nn.Sequential):
    """Learned 2x upsampling: a stride-2 transposed conv (k=3, as in ReSeg) -> norm -> act."""

    def __init__(self, cin: int, cout: int, norm: str, activation: str) -> None:
        super().__init__(
            # padding=1, output_padding=1 makes the output exactly twice the input.
            nn.ConvTranspose2d(
                cin, cout, 3, stride=2, padding=1, output_padding=1, bias=norm == "none"
            ),
            make_norm(norm, cout),
            make_activation(activation),
        )


@register_model(
    "reseg",
    "ReSeg: conv encoder -> ReNet row/column RNN layers -> transposed-conv decoder",
    family="rnn",
    knobs=[
        WIDTH.but(help="channels of the first encoder level, doubled at each level"),
        Knob(
            "depth",
            int,
            2,
            low=0,
            # each level halves the size the (costly) recurrent sweeps run at
            search={"low": 1, "high": 3},
            help="stride-2 encoder levels before the ReNet layers (with an encoder: its "
            "features at stride 2**depth, 1-5)",
        ),
        KERNEL_SIZE,
        ACTIVATION,
        NORM,
        CELL,
        HIDDEN_SIZE,
        NUM_LAYERS,
        ENCODER,
        PRETRAINED,
    ],
)
class ReSeg(nn.Module):
    """Conv encoder with ``depth`` stride-2 levels (level i has ``width * 2**i`` channels), then
    ``num_layers`` ReNet layers at 1/2**depth resolution, then ``depth`` learned 2x upsamplings.

    The convolutions capture local texture cheaply at high resolution; the recurrent sweeps at
    low resolution give every position a view of the whole image (ReSeg's point), and the
    transposed convolutions learn how to bring the labels back to full resolution.

    With ``encoder`` set, the ReNet layers sweep over the pretrained encoder's features at
    stride ``2**depth`` (the paper's own design: ReNet over VGG-16 features), and the encoder
    is built only that deep. Any H x W works: the input is padded to a multiple of
    ``2**depth`` (the encoder rounds its sizes up instead), and the logits cropped.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        width: int = 32,
        depth: int = 2,
        kernel_size: int = 3,
        activation: str = "relu",
        norm: str = "batch",
        cell: str = "gru",
        hidden_size: int = 64,
        num_layers: int = 2,
        encoder: str = "native",
        pretrained: str = "imagenet",
    ) -> None:
        super().__init__()
        self.multiple = 2**depth
        chans = [width * 2**i for i in range(depth)]
        if encoder != "native" and not 1 <= depth <= 5:
            raise ValueError(f"depth must be 1-5 with an encoder (stride 2 to 32), got {depth}")
        self.encoder = build_encoder(encoder, pretrained, in_channels, max_stride=min(2**depth, 32))
        if self.encoder is not None:
            cin = self.encoder.channels[-1]
        else:
            self.encoder, cin = self._native_encoder(
                in_channels, chans, kernel_size, norm, activation
            )
        renet = []
        for _ in range(num_layers):
            renet.append(RenetLayer(cin, hidden_size, cell))
            cin = 2 * hidden_size
        self.renet = nn.Sequential(*renet)
        decoder = []
        for c in reversed(chans):
            decoder.append(UpBlock(cin, c, norm, activation))
            cin = c
        self.decoder = nn.Sequential(*decoder)
        self.head = nn.Conv2d(cin, num_classes, 1)

    @staticmethod
    def _native_encoder(
        in_channels: int, chans: list[int], kernel_size: int, norm: str, activation: str
    ) -> tuple[nn.Sequential, int]:
        layers: list[nn.Module] = []
        cin = in_channels
        for c in chans:
            # One conv at the level's resolution, then a strided conv to halve it.
            layers.append(ConvNormAct(cin, c, kernel_size, norm=norm, activation=activation))
            layers.append(
                ConvNormAct(c, c, kernel_size, stride=2, norm=norm, activation=activation)
            )
            cin = c
        return nn.Sequential(*layers), cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.encoder, Encoder):
            h, w = x.shape[-2:]
            x = self.encoder(x)[-1]  # (B, C_enc, ceil(H/2^depth), ceil(W/2^depth))
        else:
            x, (h, w) = pad_to_multiple(x, self.multiple)  # (B, C_in, H', W')
            x = self.encoder(x)  # (B, width*2^(depth-1), H'/2^depth, W'/2^depth)
        x = self.renet(x)  # (B, 2*hidden, H'/2^depth, W'/2^depth)
        x = self.decoder(x)  # (B, width, H', W')
        return self.head(x)[..., :h, :w]  # (B, num_classes, H, W)
