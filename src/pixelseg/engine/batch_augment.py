"""Batched augmentation on the training device (``augment.on_device``), with kornia.

The loader then only decodes, resizes and crops each sample; this module applies
rotation/scale/flip to the whole batch with one affine warp per tensor (bilinear for images,
nearest for masks, exposed pixels set to IGNORE_INDEX) and colour jitter with the same formulas
as the per-sample CPU path (``pixelseg.data.transforms.colour_jitter``), so switching paths does
not change what the model is trained on, only where the work runs. One difference: the CPU path
warps before cropping, this one after (the crop happens in the loader), so with
``data.crop_size`` the exposed corners fall inside the crop. Photometric corruptions
(``augment.corruptions``) come last, batched by ``engine.batch_corruptions`` (see there for
which kinds match the CPU path exactly and how JPEG falls back to the CPU).
"""

from __future__ import annotations

import math

import torch
from kornia.geometry.transform import get_rotation_matrix2d, warp_affine

from ..constants import IGNORE_INDEX
from ..data.transforms import AugmentParams, corruption_probability
from .batch_corruptions import BatchCorruptions

_GRAY = (0.299, 0.587, 0.114)


class BatchAugment:
    """``(uint8 images (B,3,H,W), int64 masks (B,H,W)) -> (float images in [0,255], masks)``.

    Random parameters come from a CPU generator seeded by (seed, epoch, rank) in
    ``set_epoch``, so a run is reproducible and resuming at an epoch boundary replays it.

    >>> aug = BatchAugment(AugmentParams(), seed=0)
    >>> aug.set_epoch(1)
    >>> images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    >>> images, masks = aug(images, torch.zeros(2, 32, 32, dtype=torch.long))
    """

    def __init__(self, params: AugmentParams, seed: int = 0) -> None:
        self.p = params
        self.seed = seed
        self.gen = torch.Generator().manual_seed(seed)
        self.corruptions = (
            BatchCorruptions(
                params.corruptions,
                params.corruption_p,
                params.corruption_max_severity,
                blend=params.corruption_blend,
            )
            if params.corruptions
            else None
        )

    def set_epoch(self, epoch: int, rank: int = 0, progress: float = 0.0) -> None:
        """Seed the epoch's draws; ``progress`` (0 first epoch, 1 last) sets the corruption
        probability when ``corruption_p_final`` schedules it."""
        self.gen.manual_seed((self.seed * 1_000_003 + epoch) * 65_537 + rank)
        if self.corruptions is not None:
            self.corruptions.p = corruption_probability(self.p, progress)

    def _uniform(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=self.gen)

    def _affine(self, b: int, h: int, w: int) -> torch.Tensor | None:
        """(B, 2, 3) source->destination maps (rotate+scale about the centre after flips), or
        None when every sample would be left unchanged."""
        p = self.p
        angle = self._uniform(b, -p.rotation, p.rotation) if p.rotation else torch.zeros(b)
        lo, hi = math.log(p.scale[0]), math.log(p.scale[1])
        scale = torch.exp(self._uniform(b, lo, hi))  # log-uniform: zoom in and out equally likely
        hflip = torch.rand(b, generator=self.gen) < p.hflip
        vflip = torch.rand(b, generator=self.gen) < p.vflip
        if not (angle.any() or (scale != 1).any() or hflip.any() or vflip.any()):
            return None
        # warp_affine's default align_corners=True puts pixel centres at integer coordinates,
        # so the centre is ((W-1)/2, (H-1)/2) and a flip maps pixel x exactly onto W-1-x.
        centre = torch.tensor([(w - 1) / 2, (h - 1) / 2]).expand(b, 2)
        rot = get_rotation_matrix2d(centre, angle, scale[:, None].expand(b, 2))  # (B, 2, 3)
        flip = torch.eye(3).repeat(b, 1, 1)
        flip[hflip, 0, 0], flip[hflip, 0, 2] = -1.0, w - 1.0
        flip[vflip, 1, 1], flip[vflip, 1, 2] = -1.0, h - 1.0
        return rot @ flip  # (B, 2, 3) @ (B, 3, 3): flip first, then rotate/scale

    def _jitter(self, img: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast, saturation per sample, as the CPU path does them."""
        p, b = self.p, img.shape[0]
        dev = img.device
        if p.brightness:
            f = self._uniform(b, 1 - p.brightness, 1 + p.brightness).to(dev).view(b, 1, 1, 1)
            img = img * f
        if p.contrast:
            mean = img.mean(dim=(1, 2, 3), keepdim=True)
            c = self._uniform(b, 1 - p.contrast, 1 + p.contrast).to(dev).view(b, 1, 1, 1)
            img = (img - mean) * c + mean
        if p.saturation:
            gray = (img * torch.tensor(_GRAY, device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
            s = self._uniform(b, 1 - p.saturation, 1 + p.saturation).to(dev).view(b, 1, 1, 1)
            img = (img - gray) * s + gray
        return img.clamp_(0, 255)

    @torch.no_grad()
    def __call__(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = images.shape
        img = images.float()
        m = self._affine(b, h, w)
        if m is not None:
            m = m.to(img.device)
            img = warp_affine(img, m, (h, w), mode="bilinear", padding_mode="zeros")
            # Shift labels by one so that zero padding marks exposed pixels, then map those to
            # IGNORE_INDEX; nearest sampling keeps the (small integer) labels exact in float.
            shifted = (masks.to(img.dtype) + 1).unsqueeze(1)
            warped = warp_affine(shifted, m, (h, w), mode="nearest", padding_mode="zeros")
            warped = warped.squeeze(1).round().to(masks.dtype)
            masks = torch.where(warped == 0, torch.full_like(warped, IGNORE_INDEX), warped - 1)
            masks = masks.clamp_(max=IGNORE_INDEX)  # an ignored pixel (255 + 1) stays ignored
        img = self._jitter(img)
        if self.corruptions is not None:
            img = self.corruptions(img, self.gen)
        return img, masks
