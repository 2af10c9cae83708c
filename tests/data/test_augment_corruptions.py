"""Training-time corruptions (augment.corruptions): seeded per sample, image only, validated."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pixelseg.config import load_config
from pixelseg.data.corruptions import PHOTOMETRIC, apply_corruption
from pixelseg.data.loader import SegmentationDataset, build_loader
from pixelseg.data.pipeline import augment_params
from pixelseg.data.transforms import (
    AugmentParams,
    TrainTransform,
    blend_corruption,
    corruption_probability,
    draw_corruption,
    random_corruption,
)
from pixelseg.errors import PixelsegError

# Only the corruption: no geometry, no colour jitter, so any change to the image is a corruption.
ONLY = dict(rotation=0, scale=(1, 1), hflip=0, brightness=0, contrast=0, saturation=0)


def textured(h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(30, 220, (h, w, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (h, w)).astype(np.int64)
    mask[0, :3] = 255
    return image, mask


class TinySource:
    """Duck-typed SegmentationSource: ``len`` and ``load(i) -> .image, .mask``."""

    def __init__(self, n=6):
        self.pairs = [textured(seed=i) for i in range(n)]

    def __len__(self):
        return len(self.pairs)

    def load(self, i):
        image, mask = self.pairs[i]
        return SimpleNamespace(image=image, mask=mask)


def all_kinds(p=1.0, severity=3):
    return AugmentParams(
        **ONLY, corruptions=tuple(PHOTOMETRIC), corruption_p=p, corruption_max_severity=severity
    )


def test_corruption_changes_the_image_not_the_mask():
    image, mask = textured()
    t = TrainTransform(all_kinds(p=1.0, severity=5))
    changed = 0
    for i in range(16):
        out, out_mask = t(image, mask, np.random.default_rng(i))
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.array_equal(out_mask, mask)
        changed += not np.array_equal(out, image)
    assert changed == 16


def test_p_zero_is_identity_and_no_corruption_draws_nothing():
    image, mask = textured()
    out, out_mask = TrainTransform(all_kinds(p=0.0))(image, mask, np.random.default_rng(0))
    assert np.array_equal(out, image) and np.array_equal(out_mask, mask)
    # Without corruptions the random stream is untouched: the rest of augmentation is as before.
    rng = np.random.default_rng(3)
    assert draw_corruption(AugmentParams(), rng) is None
    assert rng.random() == np.random.default_rng(3).random()


def test_draws_cover_kinds_and_severities_with_probability_p():
    p = all_kinds(p=0.5, severity=2)
    draws = [draw_corruption(p, np.random.default_rng([0, i])) for i in range(400)]
    hit = [d for d in draws if d is not None]
    assert 150 < len(hit) < 250
    assert {name for name, _ in hit} == set(PHOTOMETRIC)
    assert {s for _, s in hit} == {1, 2}


def test_the_drawn_corruption_is_the_one_applied():
    image, _ = textured()
    p = AugmentParams(**ONLY, corruptions=("gaussian_noise", "jpeg"), corruption_p=1.0)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        name, severity = draw_corruption(p, rng)
        expected = apply_corruption(image, name, severity, rng)  # continues the same stream
        assert np.array_equal(random_corruption(image, p, np.random.default_rng(seed)), expected)


def test_blend_mixes_the_clean_image_with_the_drawn_corruption():
    image, _ = textured()
    p = AugmentParams(
        **ONLY, corruptions=("gaussian_noise", "contrast"), corruption_p=1.0, corruption_blend=True
    )
    weights = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        name, severity = draw_corruption(p, rng)
        weight = rng.random()  # the blend weight comes right after the kind and severity
        corrupted = apply_corruption(image, name, severity, rng)
        out = random_corruption(image, p, np.random.default_rng(seed))
        assert np.array_equal(out, blend_corruption(image, corrupted, weight))
        # every pixel lies between the clean and the corrupted value (up to rounding)
        lo = np.minimum(image, corrupted).astype(int) - 1
        hi = np.maximum(image, corrupted).astype(int) + 1
        assert ((out >= lo) & (out <= hi)).all()
        weights.append(weight)
    assert min(weights) < 0.5 < max(weights)


def test_blend_weight_ends_are_the_clean_and_the_corrupted_image():
    image, _ = textured()
    corrupted = apply_corruption(image, "contrast", 5, 0)
    assert np.array_equal(blend_corruption(image, corrupted, 0.0), image)
    assert np.array_equal(blend_corruption(image, corrupted, 1.0), corrupted)
    half = blend_corruption(image, corrupted, 0.5).astype(float)
    assert np.abs(half - (image.astype(float) + corrupted) / 2).max() <= 0.5


def test_blend_halves_the_mean_damage():
    image, _ = textured(64, 64)
    damage = {}
    for blend in (False, True):
        p = AugmentParams(**ONLY, corruptions=("gaussian_noise",), corruption_p=1.0)
        p.corruption_blend = blend
        outs = [random_corruption(image, p, np.random.default_rng(s)) for s in range(40)]
        damage[blend] = np.mean([np.abs(o.astype(float) - image).mean() for o in outs])
    # E[m] = 1/2 for m ~ U(0, 1): the mean absolute change halves (noise is the same kind)
    assert 0.35 < damage[True] / damage[False] < 0.65


def epoch_batches(num_workers: int, epoch: int = 1):
    p = AugmentParams(corruptions=("gaussian_noise", "shot_noise", "jpeg"), corruption_p=0.7)
    ds = SegmentationDataset(TinySource(), TrainTransform(p), seed=5)
    loader = build_loader(ds, batch_size=2, shuffle=True, seed=5, num_workers=num_workers)
    loader.sampler.set_epoch(epoch)
    return [(images.clone(), masks.clone()) for images, masks in loader]


def test_per_sample_draws_are_seeded_and_independent_of_workers():
    serial = epoch_batches(0)
    again = epoch_batches(0)
    workers = epoch_batches(2)
    for (a, am), (b, bm), (c, cm) in zip(serial, again, workers, strict=True):
        assert a.equal(b) and a.equal(c)
        assert am.equal(bm) and am.equal(cm)
    other_epoch = epoch_batches(0, epoch=2)
    assert not all(a.equal(b) for (a, _), (b, _) in zip(serial, other_epoch))


def test_config_keys_reach_the_transform():
    cfg = load_config(
        overrides=[
            "augment.corruptions=[gaussian_blur, contrast]",
            "augment.corruption_p=0.25",
            "augment.corruption_max_severity=5",
            "augment.corruption_blend=true",
        ]
    )
    p = augment_params(cfg.augment)
    assert p.corruptions == ("gaussian_blur", "contrast")
    assert (p.corruption_p, p.corruption_max_severity) == (0.25, 5)
    assert p.corruption_blend is True
    assert load_config().augment.corruption_blend is False
    assert load_config().augment.corruptions == []  # off by default


@pytest.mark.parametrize(
    "override, message",
    [
        ("augment.corruptions=[fog]", "augment.corruptions: unknown corruption 'fog'"),
        ("augment.corruptions=[rotate]", "augment.corruptions: 'rotate' is geometric"),
        ("augment.corruptions=[jpeg, jpeg]", "augment.corruptions: a name is listed twice"),
        ("augment.corruptions=jpeg", "augment.corruptions: expected a list"),
        ("augment.corruption_p=1.5", "augment.corruption_p: must be in"),
        ("augment.corruption_p=-0.1", "augment.corruption_p: must be in"),
        ("augment.corruption_max_severity=0", "augment.corruption_max_severity: must be 1..5"),
        ("augment.corruption_max_severity=6", "augment.corruption_max_severity: must be 1..5"),
        ("augment.corruption_max_severity=2.5", "augment.corruption_max_severity: expected an"),
        ("augment.corruption_blend=maybe", "augment.corruption_blend: expected"),
    ],
)
def test_bad_values_are_errors_naming_the_key(override, message):
    with pytest.raises(PixelsegError, match=message):
        load_config(overrides=[override])


def test_corruption_probability_moves_linearly_to_its_final_value():
    constant = AugmentParams(corruption_p=0.4)
    assert [corruption_probability(constant, t) for t in (0, 0.5, 1)] == [0.4, 0.4, 0.4]
    decaying = AugmentParams(corruption_p=0.6, corruption_p_final=0.2)
    got = [corruption_probability(decaying, t) for t in (-1, 0, 0.25, 0.5, 1, 2)]
    assert got == pytest.approx([0.6, 0.6, 0.5, 0.4, 0.2, 0.2])
    rising = AugmentParams(corruption_p=0.0, corruption_p_final=1.0)
    assert corruption_probability(rising, 0.3) == pytest.approx(0.3)


def scheduled_epochs(num_workers: int, corruptions=("gaussian_noise", "contrast")):
    """Epoch 1 at progress 0 (p 1.0), epoch 2 at progress 1 (p 0.0), one loader throughout,
    so persistent workers must see the progress of each epoch."""
    p = AugmentParams(**ONLY, corruptions=corruptions, corruption_p=1.0, corruption_p_final=0.0)
    ds = SegmentationDataset(TinySource(), TrainTransform(p), seed=3)
    loader = build_loader(ds, batch_size=2, shuffle=True, seed=3, num_workers=num_workers)
    out = []
    for epoch, progress in ((1, 0.0), (2, 1.0)):
        loader.sampler.set_epoch(epoch, progress)
        out.append(torch.cat([images for images, _ in loader]))
    return out


def clean_epoch(epoch: int):
    ds = SegmentationDataset(TinySource(), TrainTransform(AugmentParams(**ONLY)), seed=3)
    loader = build_loader(ds, batch_size=2, shuffle=True, seed=3, num_workers=0)
    loader.sampler.set_epoch(epoch)
    return torch.cat([images for images, _ in loader])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_loader_follows_the_corruption_schedule(num_workers):
    first, last = scheduled_epochs(num_workers)
    # p 1 at the start: every sample is corrupted; p 0 at the end: every sample is clean.
    changed = (first.float() - clean_epoch(1).float()).abs().flatten(1).amax(1) > 0
    assert changed.all()
    assert last.equal(clean_epoch(2))


def test_the_scheduled_loader_is_the_same_with_workers():
    for a, b in zip(scheduled_epochs(0), scheduled_epochs(2), strict=True):
        assert a.equal(b)


def test_corruption_p_final_is_validated():
    cfg = load_config(overrides=["augment.corruptions=[jpeg]", "augment.corruption_p_final=0.1"])
    assert augment_params(cfg.augment).corruption_p_final == 0.1
    with pytest.raises(PixelsegError, match="corruption_p_final"):
        load_config(overrides=["augment.corruptions=[jpeg]", "augment.corruption_p_final=1.5"])


def test_the_augment_section_declares_every_transform_parameter():
    # AugmentParams is read from the augment section by name: the defaults agree, and a value
    # set in the configuration arrives (lists as tuples).
    assert augment_params(load_config().augment) == AugmentParams()
    cfg = load_config(overrides=["augment.scale=[0.5,2.0]", "augment.corruptions=[jpeg]"])
    p = augment_params(cfg.augment)
    assert p.scale == (0.5, 2.0) and p.corruptions == ("jpeg",)
    assert augment_params(load_config(overrides=["augment.enabled=false"]).augment) is None
