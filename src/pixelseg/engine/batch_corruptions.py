"""Training-time photometric corruptions on a batch on the training device (``augment.on_device``).

The same kinds, parameters and draws (probability, kind, severity per sample) as the per-sample
CPU path (``pixelseg.data.transforms.random_corruption``, built on ``pixelseg.data.corruptions``),
computed in torch on the whole group of samples that drew the same (kind, severity):

==============  ===========================================================================
gaussian_noise  exact formula; the noise comes from a device generator seeded from the batch's
shot_noise      CPU generator (so a run is reproducible on one kind of device, but the noise
                differs from the CPU path's numpy noise)
gaussian_blur   separable Gaussian, radius int(4 sigma + 0.5), edges replicated (= scipy's)
motion_blur     the same line kernel (``data.corruptions.motion_kernel``), angle per sample
brightness      HSV value + c computed as a per-pixel rescaling of RGB (same result as the
                HSV round trip, without converting)
contrast        exact formula (per-sample, per-channel mean)
pixelate        PIL's box-filter coefficients (down, then up) applied as matrix products; PIL
                rounds to uint8 between its passes, so results differ by about a grey level
jpeg            no torch encoder: the samples that drew it go to the CPU, are encoded with PIL
                as on the CPU path, and come back (costs a device round trip, only for them)
==============  ===========================================================================

Images stay float in [0, 255] (the CPU path rounds to uint8 after each step; this one does not).
With ``blend`` each corrupted sample is mixed back with its clean image by a per-sample weight
drawn uniformly from [0, 1), as ``data.transforms.blend_corruption`` does on the CPU path.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from ..data.corruptions import PHOTOMETRIC_PARAMS, jpeg, motion_kernel


def _gaussian_weights(sigma: float, device: torch.device) -> torch.Tensor:
    radius = int(4.0 * sigma + 0.5)  # scipy.ndimage.gaussian_filter's default truncate=4
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) separable Gaussian blur with replicated edges."""
    n, c, h, w = x.shape
    k = _gaussian_weights(sigma, x.device)
    r = (k.numel() - 1) // 2
    flat = x.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def motion_blur(x: torch.Tensor, radius: int, sigma: float, angles: list[float]) -> torch.Tensor:
    """(N, C, H, W) line blur, one angle per sample, as a weighted sum of shifted copies."""
    _, _, h, w = x.shape
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = torch.empty_like(x)
    for i, angle in enumerate(angles):
        acc = torch.zeros_like(x[i])
        for dy, dx, weight in motion_kernel(radius, sigma, angle):
            acc += (
                weight * padded[i, :, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            )
        out[i] = acc
    return out


def brightness(x: torch.Tensor, c: float) -> torch.Tensor:
    """HSV value + c: with hue and saturation kept, RGB scales by new_value / value (a black
    pixel, saturation 0, becomes grey at the new value)."""
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + c).clamp(0.0, 1.0)
    return torch.where(v > 0, x * (v_new / v.clamp(min=1e-12)), v_new.expand_as(x))


def _box_resample_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) weights of PIL's BOX resampling along one axis (Resample.c's coefficients:
    the input pixels whose centres fall within the output pixel's footprint, equally weighted)."""
    scale = n_in / n_out
    support = 0.5 * max(scale, 1.0)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        pos = (torch.arange(lo, hi, dtype=torch.float64) - centre + 0.5) / max(scale, 1.0)
        w = ((pos > -0.5) & (pos <= 0.5)).to(torch.float64)
        m[i, lo:hi] = w / w.sum() if w.sum() > 0 else 0.0
    return m


@functools.lru_cache(maxsize=32)
def _pixelate_matrix_cpu(n: int, c: float) -> torch.Tensor:
    small = max(1, int(n * c))
    return (_box_resample_matrix(small, n) @ _box_resample_matrix(n, small)).to(torch.float32)


def _pixelate_matrix(n: int, c: float, device: torch.device) -> torch.Tensor:
    """(n, n): box filter down to max(1, int(n * c)) pixels and back up, as one linear map."""
    return _pixelate_matrix_cpu(n, c).to(device)


def pixelate(x: torch.Tensor, c: float) -> torch.Tensor:
    """(N, C, H, W) PIL-style box pixelation as two matrix products (rows, then columns)."""
    h, w = x.shape[-2:]
    rows, cols = _pixelate_matrix(h, c, x.device), _pixelate_matrix(w, c, x.device)
    return rows @ x.to(torch.float32) @ cols.T


def jpeg_on_cpu(x: torch.Tensor, severity: int) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> JPEG round trip per sample with PIL, back on x's device."""
    u8 = (x * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    rng = np.random.default_rng(0)  # unused: JPEG is deterministic
    out = np.stack([jpeg(np.ascontiguousarray(im), severity, rng) for im in u8])
    return torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).to(x.dtype) / 255.0


class BatchCorruptions:
    """Corrupt each sample of a batch with probability ``p`` by one of ``names`` at a severity
    drawn from 1..``max_severity``. Every draw comes from the CPU generator passed in, the same
    number of draws per batch whatever is drawn, so later draws do not depend on earlier ones.

    >>> corrupt = BatchCorruptions(("gaussian_noise", "contrast"), p=1.0, max_severity=3)
    >>> out = corrupt(torch.full((2, 3, 16, 16), 128.0), torch.Generator().manual_seed(0))
    >>> out.shape
    torch.Size([2, 3, 16, 16])
    """

    def __init__(
        self, names: tuple[str, ...], p: float, max_severity: int, blend: bool = False
    ) -> None:
        self.names, self.p, self.max_severity = tuple(names), float(p), int(max_severity)
        self.blend = bool(blend)

    def draw(self, b: int, gen: torch.Generator) -> list[tuple[str, int] | None]:
        """One (name, severity) or None per sample."""
        hit = torch.rand(b, generator=gen) < self.p
        kind = torch.randint(len(self.names), (b,), generator=gen)
        severity = torch.randint(1, self.max_severity + 1, (b,), generator=gen)
        return [
            (self.names[int(k)], int(s)) if h else None
            for h, k, s in zip(hit.tolist(), kind.tolist(), severity.tolist())
        ]

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``images``: float (B, 3, H, W) in [0, 255]; returns a corrupted copy."""
        b = images.shape[0]
        drawn = self.draw(b, gen)
        angles = (-45.0 + 90.0 * torch.rand(b, generator=gen)).tolist()
        # Drawn only with blend, so runs without it keep their random stream.
        weights = torch.rand(b, generator=gen) if self.blend else None
        noise_seed = int(torch.randint(2**62, (1,), generator=gen))
        groups: dict[tuple[str, int], list[int]] = {}
        for i, d in enumerate(drawn):
            if d is not None:
                groups.setdefault(d, []).append(i)
        if not groups:
            return images
        noise = torch.Generator(device=images.device).manual_seed(noise_seed)
        out = images.clone()
        for (name, severity), idx in sorted(groups.items()):
            index = torch.tensor(idx, device=images.device)
            clean = out.index_select(0, index)
            x = self._apply(clean / 255.0, name, severity, [angles[i] for i in idx], noise)
            x = (x * 255.0).clamp(0.0, 255.0)
            if weights is not None:
                m = weights[idx].to(x.device, x.dtype).view(-1, 1, 1, 1)
                x = (1.0 - m) * clean + m * x
            out.index_copy_(0, index, x)
        return out

    @staticmethod
    def _apply(
        x: torch.Tensor, name: str, severity: int, angles: list[float], noise: torch.Generator
    ) -> torch.Tensor:
        c = PHOTOMETRIC_PARAMS[name][severity - 1]
        if name == "gaussian_noise":
            return x + c * torch.randn(x.shape, generator=noise, device=x.device, dtype=x.dtype)
        if name == "shot_noise":
            return torch.poisson(x.clamp(min=0.0) * c, generator=noise) / c
        if name == "gaussian_blur":
            return gaussian_blur(x, float(c))
        if name == "motion_blur":
            return motion_blur(x, c[0], float(c[1]), angles)
        if name == "brightness":
            return brightness(x, c)
        if name == "contrast":
            mean = x.mean(dim=(2, 3), keepdim=True)
            return (x - mean) * c + mean
        if name == "pixelate":
            return pixelate(x, c)
        if name == "jpeg":
            return jpeg_on_cpu(x.clamp(0.0, 1.0), severity)
        raise AssertionError(f"no batched implementation of {name!r}")  # config validates names
