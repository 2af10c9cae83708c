"""Recurrent pieces shared by the RNN family, and the purely recurrent ``renet`` segmenter.

A ReNet layer (Visin et al., 2015) replaces a convolution by two bidirectional sweeps of a
recurrent network: one along every row, then one along every column of the result, so each
output position sees the whole image. Here every row (or column) of every image in the batch is
one sequence of a *single* ``nn.GRU``/``nn.LSTM`` call: the sweep is one batched kernel, never a
Python loop over rows.

Pieces:
- ``RenetLayer``: (B, C, H, W) -> (B, 2*hidden, H, W), reused by ``reseg`` and by U-Net's
  ``context="renet"``.
- ``RecurrentContext``: ReNet layers plus a 1x1 fusion back to the input channels, a drop-in
  global-context block for any CNN feature map.
- ``ReNet`` (registered as ``renet``): patch embedding -> ReNet layers -> upsampling head.
"""

from __future__ import annotations

import torch
from torch import nn

from .knobs import ACTIVATION, Knob
from .layers import ConvNormAct, make_activation, make_norm, pad_to_multiple, resize_to
from .registry import register_model

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
UPSAMPLE_MODES = ("deconv", "bilinear")

# Knobs of every model built from ReNet layers.
CELL = Knob("cell", str, "gru", choices=tuple(CELLS), search=True, help="recurrent cell")
HIDDEN_SIZE = Knob(
    "hidden_size",
    int,
    64,
    low=1,
    search=[32, 64, 128],
    help="hidden units per direction of each ReNet sweep",
)
NUM_LAYERS = Knob("num_layers", int, 2, low=1, help="ReNet layers (row + column sweeps)")


def make_rnn(cell: str, input_size: int, hidden_size: int) -> nn.RNNBase:
    """One-layer bidirectional, batch-first GRU or LSTM."""
    if cell not in CELLS:
        raise ValueError(f"cell {cell!r} is not one of {', '.join(CELLS)}")
    if hidden_size < 1:
        raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
    return CELLS[cell](input_size, hidden_size, batch_first=True, bidirectional=True)


class RenetLayer(nn.Module):
    """Bidirectional sweep along rows, then along columns: (B, C, H, W) -> (B, 2*hidden, H, W).

    >>> layer = RenetLayer(16, hidden_size=8)
    >>> layer(torch.zeros(2, 16, 5, 7)).shape
    torch.Size([2, 16, 5, 7])
    """

    def __init__(self, in_channels: int, hidden_size: int = 64, cell: str = "gru") -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.row_rnn = make_rnn(cell, in_channels, hidden_size)
        self.col_rnn = make_rnn(cell, 2 * hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # Rows: each of the B*H rows is a sequence of W steps, all in one RNN call.
        rows = x.permute(0, 2, 3, 1).reshape(b * h, w, c)  # (B*H, W, C)
        rows, _ = self.row_rnn(rows)  # (B*H, W, 2h)
        y = rows.reshape(b, h, w, -1)  # (B, H, W, 2h)
        # Columns: each of the B*W columns is a sequence of H steps.
        cols = y.transpose(1, 2).reshape(b * w, h, -1)  # (B*W, H, 2h)
        cols, _ = self.col_rnn(cols)  # (B*W, H, 2h)
        return cols.reshape(b, w, h, -1).permute(0, 3, 2, 1).contiguous()  # (B, 2h, H, W)


def recurrent_context(context: str, channels: int, norm: str, activation: str) -> nn.Module:
    """The ``context`` knob of the CNNs: a ``RecurrentContext`` for "renet", else identity."""
    if context == "renet":
        return RecurrentContext(channels, norm=norm, activation=activation)
    return nn.Identity()


class RecurrentContext(nn.Module):
    """Global context for a CNN feature map: ReNet layers, then concat with the input and a
    1x1 ConvNormAct back to ``channels``, so the block keeps the map's shape and the local
    features stay available to the decoder: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(
        self,
        channels: int,
        hidden_size: int | None = None,
        num_layers: int = 1,
        cell: str = "gru",
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        hidden = hidden_size or max(1, channels // 2)
        layers = []
        cin = channels
        for _ in range(num_layers):
            layers.append(RenetLayer(cin, hidden, cell))
            cin = 2 * hidden
        self.renet = nn.Sequential(*layers)
        self.fuse = ConvNormAct(channels + cin, channels, 1, norm=norm, activation=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.renet(x)  # (B, 2h, H, W)
        return self.fuse(torch.cat([x, context], dim=1))  # (B, C, H, W)


@register_model(
    "renet",
    "ReNet: patch embedding -> bidirectional row/column RNN sweeps -> upsampling (no convs)",
    family="rnn",
    knobs=[
        Knob("patch_size", int, 4, low=1, help="side of the square patches the sweeps run over"),
        Knob("embed_dim", int, 64, low=1, help="channels of each patch's linear embedding"),
        NUM_LAYERS,
        Knob(
            "upsample",
            str,
            "deconv",
            choices=UPSAMPLE_MODES,
            help="back to pixels: a learned transposed conv, or 1x1 logits resized bilinearly",
        ),
        ACTIVATION.but(help="nonlinearity after the patch embedding"),
        CELL,
        HIDDEN_SIZE,
    ],
)
class ReNet(nn.Module):
    """Purely recurrent segmenter in the spirit of ReNet (Visin et al., 2015).

    The image is cut into non-overlapping ``patch_size`` x ``patch_size`` patches, each
    linearly embedded to ``embed_dim`` channels; ``num_layers`` ReNet layers sweep the patch
    grid; the output layer maps every grid cell back to ``patch_size**2`` pixels of logits,
    either with a learned transposed convolution (``upsample="deconv"``, one weight per pixel
    position inside the patch) or with a 1x1 classifier and bilinear upsampling.

    Any H x W works: the input is padded to a multiple of ``patch_size`` and the logits are
    cropped back to the input's size.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        patch_size: int = 4,
        embed_dim: int = 64,
        num_layers: int = 2,
        upsample: str = "deconv",
        activation: str = "relu",
        cell: str = "gru",
        hidden_size: int = 64,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.upsample = upsample
        # A strided conv with kernel == stride is exactly a per-patch linear embedding.
        self.embed = nn.Sequential(
            nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size, bias=False),
            make_norm("batch", embed_dim),
            make_activation(activation),
        )
        layers = []
        cin = embed_dim
        for _ in range(num_layers):
            layers.append(RenetLayer(cin, hidden_size, cell))
            cin = 2 * hidden_size
        self.renet = nn.Sequential(*layers)
        if upsample == "deconv":
            self.head = nn.ConvTranspose2d(cin, num_classes, patch_size, stride=patch_size)
        else:
            self.head = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.patch_size)  # (B, C_in, H', W'), H' = p*ceil(H/p)
        padded = x.shape[-2:]
        x = self.embed(x)  # (B, E, H'/p, W'/p)
        x = self.renet(x)  # (B, 2h, H'/p, W'/p)
        x = self.head(x)  # deconv: (B, K, H', W'); bilinear: (B, K, H'/p, W'/p)
        x = resize_to(x, padded)  # (B, K, H', W')
        return x[..., : size[0], : size[1]]  # (B, K, H, W)
