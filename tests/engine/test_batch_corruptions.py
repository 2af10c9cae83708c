"""On-device corruptions (augment.corruptions with augment.on_device): the same kinds as the CPU
path, exact up to rounding where no random noise is involved; seeded; masks untouched."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from scipy import ndimage

from pixelseg.data.corruptions import PHOTOMETRIC, apply_corruption, motion_blur
from pixelseg.data.transforms import AugmentParams
from pixelseg.engine import batch_corruptions
from pixelseg.engine.batch_augment import BatchAugment
from pixelseg.engine.batch_corruptions import BatchCorruptions

NO_OTHER = dict(rotation=0, scale=(1, 1), hflip=0, brightness=0, contrast=0, saturation=0)


def smooth_image(h=33, w=47, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = ndimage.gaussian_filter(rng.normal(128, 60, (h, w, 3)), (1.5, 1.5, 0))
    image = np.clip(image, 0, 255).astype(np.uint8)
    image[:4, :4] = 0  # black pixels: brightness's special case
    return image


def on_device(image: np.ndarray, name: str, severity: int, angle: float = 0.0) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    y = BatchCorruptions._apply(x, name, severity, [angle], torch.Generator().manual_seed(0))
    return (y * 255.0).clamp(0, 255)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("name", ["gaussian_blur", "brightness", "contrast", "jpeg", "pixelate"])
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_deterministic_kinds_match_the_cpu_path(name, severity):
    image = smooth_image()
    cpu = apply_corruption(image, name, severity, 0).astype(np.float64)
    # The CPU path rounds to uint8 once; PIL's pixelate rounds after each of its four passes.
    tolerance = 1.5 if name == "pixelate" else 0.5 + 1e-3
    assert np.abs(on_device(image, name, severity) - cpu).max() <= tolerance


def test_motion_blur_matches_the_cpu_path_for_the_same_angle():
    image = smooth_image()
    angle = np.random.default_rng(4).uniform(-45.0, 45.0)  # motion_blur's one draw
    cpu = motion_blur(image, 3, np.random.default_rng(4)).astype(np.float64)
    assert np.abs(on_device(image, "motion_blur", 3, angle) - cpu).max() <= 0.5 + 1e-3


@pytest.mark.parametrize("name, severity, expected_std", [("gaussian_noise", 3, 0.18 * 255)])
def test_noise_has_the_cpu_strength(name, severity, expected_std):
    grey = np.full((64, 64, 3), 128, np.uint8)
    noisy = on_device(grey, name, severity)
    assert abs(noisy.std() - expected_std) < 0.1 * expected_std
    cpu = apply_corruption(grey, name, severity, 0).astype(np.float64)
    assert abs(noisy.std() - cpu.std()) < 0.1 * cpu.std()


def test_shot_noise_has_the_cpu_strength():
    grey = np.full((64, 64, 3), 128, np.uint8)
    noisy, cpu = on_device(grey, "shot_noise", 3), apply_corruption(grey, "shot_noise", 3, 0)
    assert abs(noisy.std() - cpu.std()) < 0.1 * cpu.std()
    assert abs(noisy.mean() - 128) < 3


def corrupting_augment(p: float, seed: int = 1) -> BatchAugment:
    params = AugmentParams(
        **NO_OTHER, corruptions=tuple(PHOTOMETRIC), corruption_p=p, corruption_max_severity=4
    )
    return BatchAugment(params, seed=seed)


def batch(b=8, h=24, w=32):
    images = torch.from_numpy(np.stack([smooth_image(h, w, i) for i in range(b)])).permute(
        0, 3, 1, 2
    )
    masks = torch.randint(0, 3, (b, h, w), generator=torch.Generator().manual_seed(0))
    return images.contiguous(), masks


def test_seeded_images_change_masks_do_not():
    images, masks = batch()
    a, b = corrupting_augment(1.0), corrupting_augment(1.0)
    a.set_epoch(2), b.set_epoch(2)
    out_a, m_a = a(images, masks)
    out_b, m_b = b(images, masks)
    assert out_a.equal(out_b)
    assert m_a.equal(masks) and m_b.equal(masks)
    assert out_a.min() >= 0 and out_a.max() <= 255
    changed = (out_a - images.float()).abs().flatten(1).amax(1) > 0
    assert changed.all()
    a.set_epoch(3)
    assert not a(images, masks)[0].equal(out_a)


def test_p_zero_is_identity():
    images, masks = batch()
    aug = corrupting_augment(0.0)
    aug.set_epoch(1)
    out, out_m = aug(images, masks)
    assert out.equal(images.float()) and out_m.equal(masks)


def test_draws_cover_kinds_and_severities():
    c = BatchCorruptions(tuple(PHOTOMETRIC), p=0.5, max_severity=2)
    drawn = c.draw(1000, torch.Generator().manual_seed(0))
    hit = [d for d in drawn if d is not None]
    assert 420 < len(hit) < 580
    assert {n for n, _ in hit} == set(PHOTOMETRIC) and {s for _, s in hit} == {1, 2}


def test_docstring_examples():
    assert doctest.testmod(batch_corruptions).failed == 0


def test_blend_mixes_each_sample_with_its_clean_image():
    images, _ = batch()
    clean = images.float()
    # contrast is deterministic: the unblended batch from the same draws is the reference
    full = BatchCorruptions(("contrast",), p=1.0, max_severity=3)(
        clean, torch.Generator().manual_seed(7)
    )
    mixed = BatchCorruptions(("contrast",), p=1.0, max_severity=3, blend=True)(
        clean, torch.Generator().manual_seed(7)
    )
    change, full_change = (mixed - clean).flatten(1), (full - clean).flatten(1)
    weights = []
    for i in range(len(clean)):
        big = full_change[i].abs() > 20  # pixels the corruption moved a lot
        ratio = change[i][big] / full_change[i][big]
        # one weight per sample, the same for every pixel of the sample
        assert (ratio - ratio.median()).abs().max() < 1e-3
        weights.append(float(ratio.median()))
    weight = torch.tensor(weights)
    assert weight.min() >= 0 and weight.max() < 1 and weight.std() > 0.1


def test_blend_is_seeded_and_off_keeps_the_old_stream():
    images, masks = batch()
    params = AugmentParams(
        **NO_OTHER,
        corruptions=("contrast", "gaussian_blur"),
        corruption_p=1.0,
        corruption_blend=True,
    )
    a, b = BatchAugment(params, seed=3), BatchAugment(params, seed=3)
    a.set_epoch(1), b.set_epoch(1)
    assert a(images, masks)[0].equal(b(images, masks)[0])
    plain = BatchCorruptions(("contrast",), p=1.0, max_severity=3)
    gen = torch.Generator().manual_seed(0)
    reference = torch.Generator().manual_seed(0)
    plain(images.float(), gen)
    # without blend, a batch takes exactly the draws it always took
    torch.rand(8, generator=reference), torch.randint(1, (8,), generator=reference)
    torch.randint(1, 4, (8,), generator=reference), torch.rand(8, generator=reference)
    torch.randint(2**62, (1,), generator=reference)
    assert torch.rand(1, generator=gen).equal(torch.rand(1, generator=reference))


def test_set_epoch_follows_the_corruption_schedule():
    images, masks = batch()
    params = AugmentParams(
        **NO_OTHER, corruptions=("contrast",), corruption_p=1.0, corruption_p_final=0.0
    )
    aug = BatchAugment(params, seed=1)
    aug.set_epoch(1, progress=0.0)
    assert aug.corruptions.p == 1.0
    changed = (aug(images, masks)[0] - images.float()).abs().flatten(1).amax(1) > 0
    assert changed.all()
    aug.set_epoch(2, progress=0.75)
    assert aug.corruptions.p == pytest.approx(0.25)
    aug.set_epoch(3, progress=1.0)
    assert aug(images, masks)[0].equal(images.float())
