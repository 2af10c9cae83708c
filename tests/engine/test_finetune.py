"""Fine-tuning a pretrained encoder: lr scale, frozen epochs, frozen BatchNorm statistics, no
decay on norms and biases, and the normalisation and weights' record in the run."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pixelseg import load_config, train
from pixelseg.config import TrainConfig
from pixelseg.engine.checkpoint import load_checkpoint
from pixelseg.engine.finetune import (
    freeze_encoder_layers,
    freeze_encoder_norms,
    group_lr,
    input_normalizer,
    param_groups,
)
from pixelseg.engine.trainer import resume
from pixelseg.models import create_model


def lite0(**kw) -> nn.Module:
    return create_model("lightseg", 3, width=4, encoder="efficientnet_lite0", **kw)


def test_groups_split_encoder_and_keep_decay_off_norms_and_biases():
    model = lite0(pretrained="none", load_weights=False)
    model.encoder.pretrained = "imagenet"  # as if loaded: the encoder gets its own scale
    groups = param_groups(model, TrainConfig(weight_decay=0.01, encoder_lr_scale=0.1))
    enc_ids = {id(p) for p in model.encoder.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    for g in groups:
        assert all((id(p) in enc_ids) == g["encoder"] for p in g["params"])
        assert g["lr_scale"] == (0.1 if g["encoder"] else 1.0)
        assert all((p.ndim > 1) == (g["weight_decay"] == 0.01) for p in g["params"])
    assert len(groups) == 4


def test_from_scratch_and_native_models_are_one_group_at_full_lr():
    for model in (lite0(pretrained="none"), create_model("lightseg", 3, width=4)):
        groups = param_groups(model, TrainConfig())
        assert len(groups) == 1 and groups[0]["lr_scale"] == 1.0 and not groups[0]["encoder"]


def test_frozen_epochs_give_the_encoder_lr_zero():
    t = TrainConfig(freeze_encoder_epochs=2, encoder_lr_scale=0.5)
    enc, dec = {"encoder": True, "lr_scale": 0.5}, {"encoder": False, "lr_scale": 1.0}
    assert group_lr(enc, 1e-3, 2, t) == 0 and group_lr(dec, 1e-3, 2, t) == 1e-3
    assert group_lr(enc, 1e-3, 3, t) == pytest.approx(5e-4)


def test_frozen_bn_keeps_the_encoder_statistics():
    model = lite0()
    before = model.encoder._bn0.running_mean.clone()
    model.train()
    freeze_encoder_norms(model, TrainConfig(encoder_bn="frozen"))
    assert not model.encoder._bn0.training and model.context.branch[1].training
    model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(model.encoder._bn0.running_mean, before)
    model.train()
    freeze_encoder_norms(model, TrainConfig(encoder_bn="train"))
    model(torch.randn(2, 3, 32, 32))
    assert not torch.equal(model.encoder._bn0.running_mean, before)


def test_frozen_stride_freezes_the_stem_and_the_stages_up_to_that_feature():
    model = lite0()
    enc = model.encoder
    n = freeze_encoder_layers(model, 4)
    # Lite0: the stem, stage 0 (1 block, stride 2) and stage 1 (2 blocks, stride 4).
    frozen = [enc._conv_stem, enc._bn0, *enc._blocks[:3]]
    assert n == sum(p.numel() for m in frozen for p in m.parameters())
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in enc._blocks[3:] for p in m.parameters())
    grouped = {id(p) for g in param_groups(model, TrainConfig()) for p in g["params"]}
    assert not grouped & {id(p) for m in frozen for p in m.parameters()}
    # Even with the encoder's statistics updated, the frozen layers' stay ImageNet's.
    model.train()
    freeze_encoder_norms(model, TrainConfig(encoder_bn="train"))
    assert not enc._bn0.training and not enc._blocks[2]._bn2.training
    assert enc._blocks[3]._bn2.training
    # A training step leaves the frozen layers as they were and moves the rest.
    stem, deep = enc._conv_stem.weight.clone(), enc._blocks[3]._project_conv.weight.clone()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(torch.randn(2, 3, 40, 56)).logsumexp(1).mean().backward()
    opt.step()
    assert torch.equal(enc._conv_stem.weight, stem) and enc._conv_stem.weight.grad is None
    assert not torch.equal(enc._blocks[3]._project_conv.weight, deep)


def test_frozen_stride_leaves_scratch_and_native_models_alone():
    for model in (lite0(pretrained="none"), create_model("lightseg", 3, width=4)):
        assert freeze_encoder_layers(model, 4) == 0
        assert all(p.requires_grad for p in model.parameters())
    assert freeze_encoder_layers(lite0(), 0) == 0


def test_frozen_stride_beyond_a_shallow_encoder_freezes_it_to_its_deepest_feature():
    model = create_model("reseg", 3, width=4, depth=1, encoder="efficientnet_lite0")
    assert model.encoder.strides == (2,)
    assert freeze_encoder_layers(model, 4) > 0
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if "encoder" not in n)


def test_frozen_stride_must_be_a_feature_stride():
    from pixelseg.errors import PixelsegError

    with pytest.raises(PixelsegError, match="train.encoder_frozen_stride"):
        load_config(overrides=["train.encoder_frozen_stride=3"])


def test_normalizer_follows_the_encoder():
    assert input_normalizer(lite0(pretrained="none")).to_dict()["std"][0] == pytest.approx(
        128 / 255
    )
    assert input_normalizer(create_model("unet", 3, width=4)).to_dict()["std"][0] == 0.229


@pytest.fixture
def pretrained_run(scenes, tmp_path):
    cfg = load_config(
        overrides=[
            f"data.root={scenes}",
            f"out_dir={tmp_path}",
            "name=ft",
            "model.name=lightseg",
            "model.width=4",
            "model.encoder=efficientnet_lite0",
            "train.epochs=2",
            "train.max_steps_per_epoch=2",
            "train.batch_size=2",
            "train.freeze_encoder_epochs=1",
            "train.encoder_frozen_stride=4",
            "train.device=cpu",
        ]
    )
    return train(cfg, progress=False, log=lambda *a, **k: None)


def test_run_records_weights_and_normalisation_and_freezes_the_first_epoch(pretrained_run):
    side = json.loads((pretrained_run.run_dir / "checkpoints" / "last.json").read_text())
    assert side["pretrained"]["encoder"] == "efficientnet_lite0"
    assert len(side["pretrained"]["sha256"]) == 64
    assert side["normalization"]["mean"][0] * 255 == pytest.approx(127)
    groups = side["optimizer"]["param_groups"]
    assert {g["encoder"] for g in groups} == {True, False}
    model, meta = load_checkpoint(pretrained_run.run_dir)
    assert meta.pretrained == side["pretrained"]
    # train.encoder_frozen_stride=4: the stem is ImageNet's, the deepest block has learned.
    imagenet = lite0().encoder
    assert torch.equal(model.encoder._conv_stem.weight, imagenet._conv_stem.weight)
    assert not torch.equal(
        model.encoder._blocks[-1]._project_conv.weight, imagenet._blocks[-1]._project_conv.weight
    )


def test_resume_needs_no_weights_file_and_keeps_the_record(pretrained_run, monkeypatch):
    from pixelseg.models.encoders import pretrained as pretrained_mod

    monkeypatch.setattr(pretrained_mod, "imagenet_weights_file", lambda name: None)
    result = resume(pretrained_run.run_dir, ["train.epochs=3"], progress=False, log=lambda *a: None)
    side = json.loads((result.run_dir / "checkpoints" / "last.json").read_text())
    assert side["epoch"] == 3 and side["pretrained"]["encoder"] == "efficientnet_lite0"


def test_predictor_feeds_the_model_the_encoder_s_normalisation(pretrained_run):
    import numpy as np

    import pixelseg

    predictor = pixelseg.load(pretrained_run.run_dir, device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    model, _ = load_checkpoint(pretrained_run.run_dir)
    x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() - 127) / 128
    with torch.no_grad():
        want = model.eval()(x).softmax(1)[0].numpy()
    np.testing.assert_allclose(predictor.predict_proba(image), want, atol=1e-5)


def test_a_run_killed_before_its_first_checkpoint_restarts_from_the_imagenet_weights(
    scenes, tmp_path
):
    """Resuming a run that never wrote a checkpoint starts it over as it was configured: with
    the pretrained encoder, not from random weights."""
    from pixelseg.engine.trainer import Trainer

    overrides = [
        f"data.root={scenes}",
        f"out_dir={tmp_path}",
        "name=killed",
        "model.name=lightseg",
        "model.width=4",
        "model.encoder=efficientnet_lite0",
        "train.epochs=1",
        "train.max_steps_per_epoch=1",
        "train.batch_size=2",
        "train.device=cpu",
    ]
    run = Trainer(load_config(overrides=overrides), progress=False, log=lambda *a: None).run_dir
    result = resume(run, [], progress=False, log=lambda *a: None)
    side = json.loads((result.run_dir / "checkpoints" / "last.json").read_text())
    assert side["pretrained"] and side["pretrained"]["encoder"] == "efficientnet_lite0"
