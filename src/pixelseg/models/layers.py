"""Small building blocks shared by the model families."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.1, inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "tanh": nn.Tanh,
    "mish": lambda: nn.Mish(inplace=True),
}

NORMS = ("batch", "group", "instance", "none")


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def make_norm(name: str, channels: int) -> nn.Module:
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        # Up to 8 groups, as many as divide the channels (a 14-channel layer gets 7).
        groups = max(g for g in range(1, min(8, channels) + 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"norm {name!r} is not one of {', '.join(NORMS)}")


class ConvNormAct(nn.Sequential):
    """Conv (same padding) -> norm -> activation. Bias only when there is no norm.

    ``activation=None`` stops after the norm (the last conv of a residual branch, added to the
    shortcut before the activation); the submodules are then ``0`` (conv) and ``1`` (norm).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm: str = "batch",
        activation: str | None = "relu",
    ) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        pad = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, pad, dilation, groups, bias=norm == "none"),
            make_norm(norm, cout),
            *([] if activation is None else [make_activation(activation)]),
        )


class SkipRefine(nn.Module):
    """A decoder step: upsample coarse features to a skip connection's size, concatenate, and
    refine with one conv (or a depthwise-separable pair, for the CPU-budget models)."""

    def __init__(
        self,
        cin: int,
        cskip: int,
        cout: int,
        kernel_size: int = 3,
        separable: bool = False,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        cat, na = cin + cskip, dict(norm=norm, activation=activation)
        if separable:
            self.conv = nn.Sequential(
                ConvNormAct(cat, cat, kernel_size, groups=cat, **na),
                ConvNormAct(cat, cout, 1, **na),
            )
        else:
            self.conv = ConvNormAct(cat, cout, kernel_size, **na)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = resize_to(x, skip.shape[-2:])  # (B, cin, h, w) of the skip
        return self.conv(torch.cat([x, skip], dim=1))  # (B, cout, h, w)


DECODER_STRIDES = (1, 2, 4)


def check_decoder_stride(decoder_stride: int) -> None:
    if decoder_stride not in DECODER_STRIDES:
        raise ValueError(f"decoder_stride must be 1, 2 or 4, got {decoder_stride}")


class FineDecoder(nn.Module):
    """The decoder steps below stride 4, for models that classify at 1/4 by default.

    ``decoder_stride=4``: nothing (identity). ``2``: one SkipRefine with the stem's stride-2
    features. ``1``: that, then one more with a light full-resolution conv of the input image,
    so the classifier sees each pixel's own colour: on small images an object edge is worth a
    whole pixel of IoU, and bilinear upsampling from 1/2 blurs it. ``out_channels`` is what the
    classifier gets.
    """

    def __init__(
        self,
        decoder_stride: int,
        channels: int,
        stem_channels: int,
        in_channels: int,
        kernel_size: int = 3,
        separable: bool = False,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        check_decoder_stride(decoder_stride)
        kw = dict(kernel_size=kernel_size, separable=separable, norm=norm, activation=activation)
        self.to_half = (
            SkipRefine(channels, stem_channels, channels, **kw) if decoder_stride <= 2 else None
        )
        self.full = self.to_full = None
        self.out_channels = channels
        if decoder_stride == 1:
            # Full resolution is the costliest place for channels: keep both convs narrow.
            cf, self.out_channels = max(8, stem_channels // 2), max(8, channels // 2)
            self.full = ConvNormAct(in_channels, cf, kernel_size, norm=norm, activation=activation)
            self.to_full = SkipRefine(channels, cf, self.out_channels, **kw)

    def forward(self, x: torch.Tensor, stem: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if self.to_half is not None:
            x = self.to_half(x, stem)  # (B, C, H/2, W/2)
        if self.to_full is not None:
            x = self.to_full(x, self.full(image))  # (B, out_channels, H, W)
        return x


def resize_to(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a feature map to ``size`` (H, W); a no-op when it already has that size."""
    if tuple(x.shape[-2:]) == tuple(size) and not torch.onnx.is_in_onnx_export():
        return x  # (a traced export must not bake this branch in: it depends on the size)
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom/right so H and W are multiples of ``multiple``; returns the original size.

    Models that downsample use this internally so users never meet a multiple-of-32 rule.
    """
    h, w = x.shape[-2:]
    ph = (multiple - h % multiple) % multiple
    pw = (multiple - w % multiple) % multiple
    if torch.onnx.is_in_onnx_export():
        # A traced export records the pad amounts as shape arithmetic, but it would bake in
        # the Python branch below and fix the padding to the sample's size; padding by zero
        # is a no-op, so always pad.
        return F.pad(x, (0, pw, 0, ph), mode="replicate"), (h, w)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate" if min(h, w) > 1 else "constant")
    return x, (h, w)
