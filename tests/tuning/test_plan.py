"""Self-configuration: fingerprints, the plan's decisions (with fake timings, so they are
deterministic), the user's overrides winning, `pixelseg plan` and `pixelseg train --data`."""

from __future__ import annotations

import json

import pytest
import yaml
from PIL import Image

from pixelseg.cli.main import main
from pixelseg.config import load_config
from pixelseg.config_overrides import Overrides
from pixelseg.data.formats import open_split
from pixelseg.tuning import ladder as ladder_mod
from pixelseg.tuning.cost import ModelCost
from pixelseg.tuning.fingerprint import (
    DatasetFingerprint,
    HardwareFingerprint,
    fingerprint_dataset,
    image_size,
)
from pixelseg.tuning.plan import make_plan
from pixelseg.tuning.plan_rules import (
    MILD_CORRUPTIONS,
    PLAN_CORRUPTIONS,
    PRETRAINED_CORRUPTIONS,
    ROBUST_CORRUPTIONS,
    choose_augmentation,
    corruption_recipe,
    starts_pretrained,
)
from pixelseg.workflows.train import apply_plan_if_unconfigured

# Seconds per megapixel (training) of each candidate, roughly this machine's 2 cores.
FAKE_S_PER_MPIX = {
    ("unet", 64): 80.0,
    ("unet", 32): 30.0,
    ("unet", 16): 10.0,
    ("lightseg", 24): 2.5,
    ("lightseg", 16): 1.5,
    ("lightseg", 32): 4.0,
}


# lightseg 32 wide over EfficientNet-Lite0, pretrained.
FAKE_S_PER_MPIX[("lightseg", 32, "efficientnet_lite0")] = 1.5


def fake_costs(model: str, knobs: dict, factor: float = 1.0) -> ModelCost:
    key = (model, knobs.get("width")) + ((knobs["encoder"],) if "encoder" in knobs else ())
    s = FAKE_S_PER_MPIX[key] * factor
    return ModelCost(model, knobs, s, s / 4, peak_bytes_per_mpix=2e9, data_s_per_image=0.01)


@pytest.fixture(autouse=True)
def scratch_ladder(monkeypatch):
    """The from-scratch ladder, as on a machine without pretrained weights; the tests of the
    pretrained rung install them (``with_weights``)."""
    monkeypatch.setattr(ladder_mod, "weights_installed", lambda encoder: False)


@pytest.fixture
def with_weights(monkeypatch):
    monkeypatch.setattr(ladder_mod, "weights_installed", lambda encoder: True)


def dataset(n_train=367, n_val=101, hw=(360, 480), lo=None, hi=None, shares=None):
    shares = shares or [0.3, 0.3, 0.2, 0.19, 0.01]
    return DatasetFingerprint(
        root="d",
        format="camvid",
        class_names=[f"c{i}" for i in range(len(shares))],
        n_train=n_train,
        n_val=n_val,
        sizes={},
        median_hw=hw,
        min_hw=lo or hw,
        max_hw=hi or hw,
        size_samples=10,
        class_shares=shares,
        stats_samples=n_train,
    )


CPU = HardwareFingerprint("cpu", 2, 16 * 2**30)
GPU = HardwareFingerprint("cuda:0", 16, 128 * 2**30, "H100", 80 * 2**30)


def test_cpu_large_images_get_downscaled_and_a_light_model():
    plan = make_plan(dataset(), CPU, fake_costs)
    assert plan.value("model.name") == "lightseg"
    resize = plan.value("data.resize")
    assert resize is not None and resize[0] < 360 and resize[0] / resize[1] == 360 / 480
    assert plan.value("data.crop_size") is None
    assert plan.estimates["epoch_seconds"] <= 60
    assert 10 <= plan.value("train.epochs") <= 200
    assert plan.value("train.class_weights") == "sqrt"  # 0.3 vs 0.01: 30x
    assert plan.value("augment.rotation") == 15.0  # < 500 images
    assert plan.value("augment.corruptions") == PLAN_CORRUPTIONS
    assert "shot_noise" not in PLAN_CORRUPTIONS  # held out, so robustness shows what carries over
    recipe = corruption_recipe("lightseg", {"width": plan.value("model.width")})
    assert plan.value("augment.corruption_max_severity") == recipe.max_severity
    for pair in plan.overrides():  # every choice is a valid override
        load_config(overrides=[pair])
    text = plan.table()
    assert "model.name" in text and "reason" in text and "s per epoch" in text


def test_small_images_keep_full_resolution_and_the_largest_model():
    plan = make_plan(
        dataset(n_train=200, n_val=40, hw=(64, 64), shares=[0.25, 0.25, 0.25, 0.25]),
        CPU,
        fake_costs,
    )
    assert plan.value("model.name") == "unet" and plan.value("model.width") == 32
    assert plan.value("data.resize") is None and plan.value("train.batch_size") == 8
    assert plan.value("train.class_weights") is None


def test_gpu_plans_bigger_models_and_batches():
    cpu = make_plan(dataset(), CPU, fake_costs)
    gpu = make_plan(dataset(), GPU, lambda m, k: ModelCost(m, k, 0.05, 0.01, 2e9))
    assert gpu.value("model.name") == "unet" and gpu.value("model.width") == 64
    assert gpu.value("data.resize") is None
    assert gpu.value("train.batch_size") > cpu.value("train.batch_size")
    assert gpu.value("data.cache") is False  # loader workers decode in parallel there


def test_varying_sizes_are_cropped_not_resized():
    ds = dataset(hw=(375, 500), lo=(300, 400), hi=(500, 500))
    plan = make_plan(ds, CPU, fake_costs)
    assert plan.value("data.resize") is None
    crop = plan.value("data.crop_size")
    assert crop is not None and crop[0] <= 375


def test_user_overrides_win_and_the_plan_works_around_them():
    fixed = Overrides.parse(
        ["train.batch_size=2", "data.resize=[90, 120]", "train.epochs=3"]
    ).flat()
    plan = make_plan(dataset(), CPU, fake_costs, fixed)
    assert plan.value("train.batch_size") == 2 and plan.value("train.epochs") == 3
    assert plan.value("data.resize") == [90, 120]
    overrides = plan.overrides()
    assert not any(
        o.startswith(("train.batch_size=", "data.resize=", "train.epochs=")) for o in overrides
    )
    # The epoch estimate uses the user's batch and size: 90x120 is cheap enough for a U-Net.
    assert plan.value("model.name") == "unet"
    assert "(yours)" in plan.table()


def test_image_size_reads_headers_and_exif_rotation(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    assert image_size(tmp_path / "a.png") == (30, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90: read_image returns it 40 high, 30 wide
    Image.new("RGB", (40, 30)).save(tmp_path / "b.jpg", exif=exif)
    assert image_size(tmp_path / "b.jpg") == (40, 30)


def test_fingerprint_of_scenes(scenes):
    fp = fingerprint_dataset(open_split(scenes, "train"), open_split(scenes, "val"))
    assert (fp.n_train, fp.n_val, fp.num_classes) == (8, 4, 7)
    assert fp.median_hw == (32, 32) and not fp.sizes_vary
    assert sum(fp.class_shares) == pytest.approx(1.0)


def test_cli_plan_prints_and_saves(scenes, tmp_path, capsys):
    cfg_file, js = tmp_path / "plan.yaml", tmp_path / "plan.json"
    assert (
        main(
            [
                "plan",
                "--data",
                str(scenes),
                "--save",
                str(cfg_file),
                "--json",
                str(js),
                "train.batch_size=2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "choice" in out and "reason" in out and "as overrides:" in out
    cfg = load_config(cfg_file)  # `pixelseg train --config plan.yaml` accepts it
    assert cfg.data.root == str(scenes) and cfg.train.batch_size == 2
    data = json.loads(js.read_text())
    assert {"choices", "overrides", "dataset", "hardware", "estimates"} <= set(data)


def test_train_without_model_options_plans_and_saves_the_plan(scenes, tmp_path, capsys):
    out_dir = tmp_path / "runs"
    common = ["train", "--quiet", "--data", str(scenes), "--out-dir", str(out_dir)]
    budget = ["train.epochs=1", "train.max_steps_per_epoch=1", "train.threads=1"]
    assert main([*common, "--name", "planned", *budget]) == 0
    run = out_dir / "planned"
    plan = json.loads((run / "plan.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    chosen = {c["key"]: c for c in plan["choices"]}
    assert cfg["model"]["name"] == chosen["model.name"]["value"]
    assert cfg["train"]["epochs"] == 1 and chosen["train.epochs"]["source"] == "yours"
    # Your epochs are kept: no budget re-fits them (it once trained 143 epochs here).
    assert cfg["train"]["time_budget_minutes"] is None
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert cfg["train"]["batch_size"] == chosen["train.batch_size"]["value"]
    assert "plan:" in capsys.readouterr().out

    # Any model option means: no plan.
    assert main([*common, "--name", "chosen", "model.width=4", "model.depth=1", *budget]) == 0
    assert not (out_dir / "chosen" / "plan.json").exists()


def test_no_plan_for_model_options_no_plan_flag_or_torchrun():
    def applied(overrides, chose_model=False, world_size=1):
        cfg = load_config(overrides=["data.root=/nonexistent"])
        user = Overrides.parse(overrides)
        plan = apply_plan_if_unconfigured(cfg, user, chose_model, world_size, log=lambda *a: None)
        return plan is not None

    pairs = ["data.root=/nonexistent"]
    assert not applied(pairs, chose_model=True)  # pixelseg train --model, --config or --no-plan
    assert not applied([*pairs, "model.width=8"])
    assert not applied([*pairs, "model=unet"])
    assert not applied(pairs, world_size=2)  # under torchrun: each process could plan otherwise


def test_corruptions_the_user_turns_off_stay_off():
    plan = make_plan(dataset(), CPU, fake_costs, fixed={"augment.corruptions": []})
    assert plan.value("augment.corruptions") == []
    assert not any(o.startswith("augment.corruptions=") for o in plan.overrides())


def test_corruption_strength_follows_the_models_width():
    assert corruption_recipe("lightseg", {"width": 24}) is ROBUST_CORRUPTIONS
    assert corruption_recipe("unet", {"width": 64}) is ROBUST_CORRUPTIONS
    assert corruption_recipe("lightseg", {"width": 16}) is MILD_CORRUPTIONS
    assert corruption_recipe("lightseg", {}) is MILD_CORRUPTIONS  # the knob's default, 16
    assert corruption_recipe("no-such-model", {}) is MILD_CORRUPTIONS

    def costs(lightseg24_s_per_mpix):
        table = dict(FAKE_S_PER_MPIX)
        table[("lightseg", 24)] = lightseg24_s_per_mpix
        table[("lightseg", 16)] = 0.4

        def fn(model, knobs):
            s = table[(model, knobs.get("width"))]
            return ModelCost(model, knobs, s, s / 4, peak_bytes_per_mpix=2e9)

        return fn

    # A machine where the 24-wide model fits a minute per epoch at full size: the robust
    # recipe, its rate falling over training, and the overrides load as a config.
    wide = make_plan(dataset(), CPU, costs(0.7))
    assert (wide.value("model.width"), wide.value("data.resize")) == (24, None)
    assert wide.value("augment.corruption_p") == 0.6
    assert wide.value("augment.corruption_p_final") == 0.2
    assert wide.value("augment.corruption_max_severity") == 4
    aug = load_config(overrides=wide.overrides()).augment
    assert (aug.corruption_p, aug.corruption_p_final, aug.corruption_max_severity) == (0.6, 0.2, 4)
    # A slower one, where only the 16-wide model fits at full size: the mild recipe.
    narrow = make_plan(dataset(), CPU, costs(1.2))
    assert (narrow.value("model.width"), narrow.value("data.resize")) == (16, None)
    assert narrow.value("augment.corruption_p") == 0.25
    assert narrow.value("augment.corruption_p_final") is None
    assert narrow.value("augment.corruption_max_severity") == 3
    # A 10-minute budget allows too few epochs of the 24-wide model (~47 s each): the lighter
    # one, at the same full resolution, and the plan says why.
    short = make_plan(dataset(), CPU, costs(0.7), fixed={"train.time_budget_minutes": 10})
    assert (short.value("model.width"), short.value("data.resize")) == (16, None)
    assert "lightest that fits" in short.table()
    # What the user sets wins over either recipe.
    mine = make_plan(dataset(), CPU, costs(0.7), fixed={"augment.corruption_p": 0.1})
    assert mine.value("augment.corruption_p") == 0.1
    assert mine.value("augment.corruption_p_final") is None  # not scheduled behind your back
    assert not any(o.startswith("augment.corruption_p=") for o in mine.overrides())


def test_a_pretrained_encoder_gets_the_mild_recipe_and_the_default_augmentation(with_weights):
    lite0 = {"encoder": "efficientnet_lite0", "width": 32}
    assert starts_pretrained(lite0)
    assert not starts_pretrained({**lite0, "pretrained": "none"})  # from scratch after all
    assert not starts_pretrained({"encoder": "native", "width": 32})
    assert not starts_pretrained({})
    # Whatever its width: the robust recipe is for models that learn their own features.
    assert corruption_recipe("lightseg", lite0) is PRETRAINED_CORRUPTIONS
    assert corruption_recipe("lightseg", {**lite0, "pretrained": "none"}) is ROBUST_CORRUPTIONS
    assert (PRETRAINED_CORRUPTIONS.p, PRETRAINED_CORRUPTIONS.p_final) == (0.25, None)
    # Small data: stronger augmentation from scratch, the default over a pretrained encoder;
    # large data: the light setting for both.
    assert choose_augmentation(367)[:2] == (15.0, [0.7, 1.4])
    assert choose_augmentation(367, pretrained=True)[:2] == (10.0, [0.8, 1.25])
    assert choose_augmentation(9000, pretrained=True)[:2] == (5.0, [0.9, 1.1])
    # The plan applies both to the model it picks, and the user's keys still win.
    plan = make_plan(dataset(), CPU, fake_costs)
    assert plan.value("model.encoder") == "efficientnet_lite0"
    assert (plan.value("augment.rotation"), plan.value("augment.scale")) == (10.0, [0.8, 1.25])
    assert plan.value("augment.corruption_p") == 0.25
    assert plan.value("augment.corruption_p_final") is None
    assert "pretrained encoder" in plan.table()
    mine = make_plan(dataset(), CPU, fake_costs, {"augment.rotation": 20.0})
    assert mine.value("augment.rotation") == 20.0


def test_pretrained_model_is_taken_at_the_largest_scale_that_gives_it_enough_epochs(
    with_weights,
):
    plan = make_plan(dataset(), CPU, fake_costs)
    assert plan.value("model.name") == "lightseg"
    assert plan.value("model.encoder") == "efficientnet_lite0"
    assert plan.value("data.resize") is None  # full resolution: ~17 epochs >= 12
    assert plan.estimates["epoch_seconds"] > 60  # judged by epochs, not the 60 s target
    reason = next(c.reason for c in plan.choices if c.key == "model.name")
    assert "pretrained encoder" in reason and ">= the 12" in reason
    # A 10-minute budget: the epochs come from a smaller scale, not from a weaker model.
    short = make_plan(dataset(), CPU, fake_costs, {"train.time_budget_minutes": 10})
    assert short.value("model.encoder") == "efficientnet_lite0"
    assert short.value("data.resize") is not None and short.value("data.resize")[0] < 360


def test_the_choice_does_not_flip_on_timing_noise(with_weights):
    """The same choice with every timing 5% faster or slower."""
    plans = [
        make_plan(dataset(), CPU, lambda m, k, f=f: fake_costs(m, k, f)) for f in (0.95, 1, 1.05)
    ]
    picked = {
        (p.value("model.name"), p.value("model.encoder"), str(p.value("data.resize")))
        for p in plans
    }
    assert len(picked) == 1


def test_without_weights_the_ladder_is_from_scratch():
    plan = make_plan(dataset(), CPU, fake_costs)
    assert "model.encoder" not in {c.key for c in plan.choices}


def test_a_model_you_name_with_a_pretrained_encoder_is_sized_by_its_epochs(with_weights):
    fixed = {"model.name": "lightseg", "model.encoder": "efficientnet_lite0", "model.width": 32}
    plan = make_plan(dataset(), CPU, fake_costs, fixed)
    assert plan.value("data.resize") is None  # ~17 epochs at full size: enough to fine-tune
    scratch = make_plan(dataset(), CPU, fake_costs, {**fixed, "model.pretrained": "none"})
    assert scratch.value("data.resize") is not None  # from scratch: the 60 s epoch rule
