"""Every registered model through the same checks, plus the summary, the registry's errors and
the `models` / `summary` commands.

Models run with tiny knobs (TINY below) so the file stays fast on two CPU cores; a model missing
from TINY runs with its defaults, so a newly added model is covered without editing this file.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pixelseg.cli.main import main
from pixelseg.errors import PixelsegError
from pixelseg.models import create_model, list_models
from pixelseg.models.registry import get_entry
from pixelseg.models.renet import RenetLayer
from pixelseg.models.summary import count_module_macs, summarize

NUM_CLASSES = 3

TINY: dict[str, dict] = {
    "unet": dict(width=8, depth=3),
    "deeplab": dict(width=4, dilations=(1, 2, 3)),
    "lightseg": dict(width=8, expansion=2),
    "renet": dict(patch_size=4, embed_dim=8, hidden_size=8, num_layers=1),
    "reseg": dict(width=8, depth=2, hidden_size=8, num_layers=1),
}

# Every registered model, plus variants whose extra code paths deserve the same checks.
CASES = [(e.name, TINY.get(e.name, {})) for e in list_models()] + [
    ("unet", {**TINY["unet"], "context": "renet"}),
    ("lightseg", {**TINY["lightseg"], "context": "renet"}),
    ("renet", {**TINY["renet"], "cell": "lstm", "upsample": "bilinear", "patch_size": 2}),
    ("deeplab", {**TINY["deeplab"], "decoder_stride": 2}),
    ("lightseg", {**TINY["lightseg"], "decoder_stride": 2}),
    ("deeplab", {**TINY["deeplab"], "decoder_stride": 1}),
    ("lightseg", {**TINY["lightseg"], "decoder_stride": 1}),
    # Every decoder over a pretrained encoder (random weights here; loading has its own tests).
    ("unet", {"width": 4, "encoder": "efficientnet_lite0", "pretrained": "none"}),
    ("deeplab", {**TINY["deeplab"], "encoder": "efficientnet_lite0", "pretrained": "none"}),
    ("lightseg", {**TINY["lightseg"], "encoder": "efficientnet_lite0", "pretrained": "none"}),
    ("reseg", {**TINY["reseg"], "encoder": "efficientnet_lite0", "pretrained": "none"}),
    (
        "deeplab",
        {
            **TINY["deeplab"],
            "encoder": "efficientnet_lite0",
            "pretrained": "none",
            "output_stride": 8,
        },
    ),
]
IDS = [
    name
    + "".join(
        f"-{k}={v}"
        for k, v in kn.items()
        if k in ("context", "cell", "decoder_stride", "upsample", "encoder", "output_stride")
    )
    for name, kn in CASES
]


def build(name: str, knobs: dict, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, NUM_CLASSES, **knobs)


@pytest.mark.parametrize("name,knobs", CASES, ids=IDS)
@pytest.mark.parametrize("size", [(37, 53), (64, 96)])
def test_output_has_input_size(name, knobs, size):
    model = build(name, knobs).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, NUM_CLASSES, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name,knobs", CASES, ids=IDS)
def test_gradients_reach_every_parameter(name, knobs):
    model = build(name, knobs).train()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 37, 53)
    y = torch.randint(0, NUM_CLASSES, (2, 37, 53))
    F.cross_entropy(model(x), y).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reaches {dead}"


def two_scenes() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 32x32 images: a white square (class 1) and a red square (class 2) on faint noise."""
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(2, 3, 32, 32, generator=g)
    y = torch.zeros(2, 32, 32, dtype=torch.long)
    x[0, :, 8:24, 8:24] += 1.0
    y[0, 8:24, 8:24] = 1
    x[1, 0, 0:16, 16:32] += 1.0
    y[1, 0:16, 16:32] = 2
    return x, y


@pytest.mark.parametrize("name,knobs", CASES, ids=IDS)
def test_tiny_batch_overfits(name, knobs):
    model = build(name, knobs).train()
    x, y = two_scenes()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.3 * losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"


@pytest.mark.parametrize("name,knobs", CASES, ids=IDS)
def test_eval_is_deterministic(name, knobs):
    model = build(name, knobs).eval()
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name,knobs", CASES, ids=IDS)
def test_summary_totals_and_macs_match_torch(name, knobs):
    model = build(name, knobs)
    s = summarize(model, size=(37, 53), batch_size=2)
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.trainable_params == s.total_params
    assert s.rows and s.peak_activation_bytes > 0
    # Independent check: torch's dispatcher-level FLOP counter sees the same products. On the
    # meta device, because on CPU an LSTM may run as one fused oneDNN op the counter skips.
    meta = copy.deepcopy(model).to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(torch.zeros(2, 3, 37, 53, device="meta"))
    assert s.flops == counter.get_total_flops()
    json.dumps(s.to_dict())
    assert "total params" in s.table()


def test_renet_layer_sees_whole_image_and_keeps_images_apart():
    layer = RenetLayer(4, hidden_size=6)
    x = torch.randn(2, 4, 5, 7, requires_grad=True)
    out = layer(x)
    assert out.shape == (2, 12, 5, 7)
    out[0, :, 2, 3].sum().backward()
    # One output position depends on every position of its own image (row sweep, then
    # column sweep) and on nothing of the other image: the reshapes keep images apart.
    assert (x.grad[0].abs().sum(0) > 0).all()
    assert (x.grad[1] == 0).all()


# --- summary: hand-checked counts ---------------------------------------------------------


def test_summary_conv_macs_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    s = summarize(conv, size=(10, 12))
    assert s.macs == 8 * 10 * 12 * (3 * 3 * 3)  # every output gathers Cin*k*k inputs
    assert s.total_params == 8 * 3 * 9 + 8
    assert s.rows[0].output_shape == [1, 8, 10, 12]

    grouped = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4)
    s = summarize(grouped, size=(9, 9), in_channels=8)
    assert s.macs == 8 * 5 * 5 * (2 * 9)

    deconv = nn.ConvTranspose2d(4, 6, 2, stride=2)
    s = summarize(deconv, size=(5, 7), in_channels=4)
    assert s.macs == 4 * 5 * 7 * (6 * 4)  # every input scatters through Cout*k*k weights


def test_summary_rnn_macs_by_hand():
    # RenetLayer(C=5, hidden=7) on a 2x5x3x4 map: each sweep is a bidirectional GRU over all
    # B*H*W = 24 positions; GRU: 3 * (in*h + h*h) per step per direction.
    s = summarize(RenetLayer(5, hidden_size=7), size=(3, 4), in_channels=5, batch_size=2)
    rows = 24 * 2 * 3 * (5 * 7 + 7 * 7)
    cols = 24 * 2 * 3 * (14 * 7 + 7 * 7)  # the column sweep reads the 2*7 row features
    assert s.macs == rows + cols

    # Two-layer unidirectional LSTM, time-major input (T=6, B=3): 4 gates.
    lstm = nn.LSTM(5, 7, num_layers=2)
    x = torch.zeros(6, 3, 5)
    out = lstm(x)
    per_step = 4 * (5 * 7 + 7 * 7) + 4 * (7 * 7 + 7 * 7)
    assert count_module_macs(lstm, (x,), out) == 18 * per_step


def test_summary_peak_memory_counts_activations():
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.ReLU())
    s = summarize(model, size=(10, 10))
    assert s.peak_activation_bytes >= 4 * 10 * 10 * 4  # at least the conv output, float32


def test_summary_restores_training_flags():
    model = build("unet", TINY["unet"]).train()
    summarize(model, size=(32, 32))
    assert all(m.training for m in model.modules())


def test_lightseg_needs_a_tenth_of_unet_flops():
    # On the meta device nothing is computed: shapes and MACs only, instant at 360x480.
    with torch.device("meta"):
        unet = create_model("unet", 11)
        light = create_model("lightseg", 11)
    unet_macs = summarize(unet, (360, 480), measure_memory=False).macs
    light_macs = summarize(light, (360, 480), measure_memory=False).macs
    assert light_macs * 10 <= unet_macs


# --- registry errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,knobs,needle",
    [
        ("unet", {"nope": 1}, "nope"),
        ("unet", {"context": "lstm"}, "context"),
        ("deeplab", {"output_stride": 4}, "output_stride"),
        ("deeplab", {"dilations": [0, 2]}, "dilations"),
        ("lightseg", {"kernel_size": 4}, "kernel_size"),
        ("lightseg", {"decoder_stride": 8}, "decoder_stride"),
        ("renet", {"cell": "rnn"}, "cell"),
        ("renet", {"upsample": "nearest"}, "upsample"),
        ("reseg", {"depth": -1}, "depth"),
        ("no-such-model", {}, "unknown model"),
    ],
)
def test_registry_rejects_bad_knobs(name, knobs, needle):
    with pytest.raises(PixelsegError, match=needle):
        create_model(name, 3, **knobs)


def _wrong_value(tp):
    return 3 if tp is str else "abc"


@pytest.mark.parametrize(
    "name,knob",
    [(e.name, k) for e in list_models() for k in e.knobs()],
)
def test_every_knob_names_itself_and_its_type_when_given_the_wrong_type(name, knob):
    tp = get_entry(name).knob_types()[knob]
    with pytest.raises(PixelsegError, match=rf"^model\.{knob}: expected .*, got "):
        create_model(name, 3, **{knob: _wrong_value(tp)})


def test_knob_values_that_fit_are_taken():
    assert create_model("unet", 3, width=4, dropout=0).pixelseg_spec["knobs"]["dropout"] == 0.0
    assert create_model("unet", 3, width=4, dropout="1e-1").pixelseg_spec["knobs"]["dropout"] == 0.1
    model = create_model("deeplab", 3, width=4, dilations=2)  # one rate for a tuple knob
    assert model.pixelseg_spec["knobs"]["dilations"] == 2
    with pytest.raises(PixelsegError, match="model.width: expected an integer, got True"):
        create_model("unet", 3, width=True)


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_models_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for entry in list_models():
        assert entry.name in out
    assert "dilations=[6,12,18]" in out


def test_cli_summary_prints_table(capsys):
    argv = "summary --model reseg --size 37x53 --num-classes 5 width=4 hidden_size=8 num_layers=1"
    code = main(argv.split())
    assert code == 0
    out = capsys.readouterr().out
    assert "GRU" in out and "total params" in out and "peak activation memory" in out


def test_cli_summary_yaml_knobs_and_json(capsys):
    argv = (
        "summary --model deeplab --size 64 --meta --json width=4 dilations=[1,2,3] activation=gelu"
    )
    code = main(argv.split())
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"]["knobs"]["dilations"] == [1, 2, 3]
    assert data["input_shape"] == [1, 3, 64, 64]
    assert data["flops"] == 2 * data["macs"] > 0


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--model", "unet", "bogus=1"], "bogus"),
        (["--model", "unet", "depth"], "key=value"),
        (["--model", "unet", "--size", "3y4"], "--size"),
        (["--model", "nothing"], "unknown model"),
    ],
)
def test_cli_summary_errors_are_one_line(capsys, argv, needle):
    assert main(["summary", "--meta", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


@pytest.mark.parametrize("channels,groups", [(14, 7), (6, 6), (16, 8), (13, 1), (4, 4)])
def test_group_norm_groups_divide_the_channels(channels, groups):
    from pixelseg.models.layers import make_norm

    norm = make_norm("group", channels)
    assert norm.num_groups == groups
    assert create_model("lightseg", 3, width=4, norm="group")(torch.randn(1, 3, 32, 32)).shape == (
        1,
        3,
        32,
        32,
    )
