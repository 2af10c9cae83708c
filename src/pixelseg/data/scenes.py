"""Built-in multi-object scenes: shapes of 6 classes on cluttered backgrounds.

Objects vary in size, colour, texture and rotation; they overlap (later objects occlude
earlier ones) and are cut by the frame. Backgrounds carry gradients, distractor lines and
dots (all labelled background), and every image gets sensor noise. Deterministic for a seed,
any image size. ``write_scenes`` writes the mask-folder layout, so the demo goes through the
same reader as a user's data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from ..errors import PixelsegError
from .imageio import write_png
from .sample import ClassTable

SCENE_CLASSES = ClassTable(
    names=["background", "circle", "square", "triangle", "star", "cross", "ring"],
    colours=[
        (0, 0, 0),
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
    ],
)


def _regular(n: int, radius: float, rot: float, inner: float | None = None) -> np.ndarray:
    """Vertices of a regular polygon (or a star when ``inner`` is given), centred at 0."""
    k = 2 * n if inner else n
    angles = rot + np.arange(k) * 2 * math.pi / k
    radii = np.full(k, radius)
    if inner:
        radii[1::2] = radius * inner
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _cross(radius: float, rot: float) -> np.ndarray:
    a, b = radius, radius * 0.36
    pts = np.array(
        [
            (-b, -a),
            (b, -a),
            (b, -b),
            (a, -b),
            (a, b),
            (b, b),
            (b, a),
            (-b, a),
            (-b, b),
            (-a, b),
            (-a, -b),
            (-b, -b),
        ],
        dtype=float,
    )
    c, s = math.cos(rot), math.sin(rot)
    return pts @ np.array([[c, s], [-s, c]])


def _shape_mask(
    cls: int, size: tuple[int, int], cx: float, cy: float, r: float, rot: float
) -> np.ndarray:
    h, w = size
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if cls == 1:  # circle
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    elif cls == 6:  # ring: the hole shows whatever lies underneath
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        ri = r * 0.55
        draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    else:
        if cls == 2:
            pts = _regular(4, r * 1.15, rot)
        elif cls == 3:
            pts = _regular(3, r * 1.2, rot)
        elif cls == 4:
            pts = _regular(5, r * 1.2, rot, inner=0.45)
        else:
            pts = _cross(r * 1.1, rot)
        draw.polygon([(cx + x, cy + y) for x, y in pts], fill=1)
    return np.asarray(canvas, dtype=bool)


def _contrasting_colour(
    rng: np.random.Generator, behind: np.ndarray, min_dist: float = 90.0
) -> np.ndarray:
    """A random colour at least ``min_dist`` (RGB distance) from ``behind``, so every object is
    visible to a person; the classes still differ only by shape, never by colour."""
    for _ in range(50):
        c = rng.uniform(0, 255, 3)
        if np.linalg.norm(c - behind) >= min_dist:
            return c
    return 255.0 - behind  # the complement is always far enough


def _texture(rng: np.random.Generator, where: np.ndarray, behind: np.ndarray) -> np.ndarray:
    """(N, 3) float colours for the N pixels of the (H, W) bool mask ``where``, in row-major
    order: solid, stripes or checker in two related colours. Computed on those pixels only,
    not on the whole frame: the scenes of the demo are generated while its user waits."""
    c1 = _contrasting_colour(rng, behind)
    c2 = np.clip(c1 + rng.uniform(-60, 60, 3), 0, 255)
    kind = rng.integers(3)
    yy, xx = np.nonzero(where)
    if kind == 0:
        sel = np.zeros(yy.shape, bool)
    elif kind == 1:
        theta, period = rng.uniform(0, math.pi), rng.uniform(4, 10)
        sel = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period) > 0
    elif kind == 2:
        p = int(rng.integers(3, 8))
        sel = ((xx // p) + (yy // p)) % 2 == 0
    return np.where(sel[:, None], c2, c1)


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    t = np.clip(0.5 + (xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta), 0, 1)
    img = c1 * (1 - t[:, :, None]) + c2 * t[:, :, None]
    # Low-frequency blotches so colour alone never tells object from background.
    blot = rng.normal(0, 1, (max(2, h // 16), max(2, w // 16), 3))
    blot = (
        np.asarray(
            Image.fromarray(((blot * 12 + 128).clip(0, 255)).astype(np.uint8)).resize(
                (w, h), Image.BILINEAR
            ),
            dtype=float,
        )
        - 128
    )
    img = img + blot
    # Clutter: a few thin lines and small dots, all background, in colours near the local
    # background so they read as clutter, not as objects.
    pil = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    base = img.reshape(-1, 3).mean(0)

    def near_colour() -> tuple[int, ...]:
        return tuple(int(v) for v in np.clip(base + rng.uniform(-50, 50, 3), 0, 255))

    for _ in range(int(rng.integers(1, 4))):
        x0, y0, x1, y1 = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h)
        draw.line([x0, y0, x1, y1], fill=near_colour(), width=1)
    for _ in range(int(rng.integers(2, 7))):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.8, 1.8)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=near_colour())
    return np.asarray(pil, dtype=float)


def generate_scene(
    seed: int, size: tuple[int, int] = (128, 128), objects: tuple[int, int] = (3, 6)
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (H, W, 3) uint8 image and (H, W) int64 mask with ids of SCENE_CLASSES."""
    h, w = size
    if h < 16 or w < 16:
        raise PixelsegError(f"scene size {h}x{w}: both sides must be at least 16 pixels")
    rng = np.random.default_rng(seed)
    image = _background(rng, size)
    mask = np.zeros(size, dtype=np.int64)
    short = min(h, w)
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        cls = int(rng.integers(1, len(SCENE_CLASSES.names)))
        r = rng.uniform(0.11, 0.2) * short
        # Centres inside the frame: objects may be cut by the border, but never mostly.
        cx, cy = rng.uniform(0.08, 0.92) * w, rng.uniform(0.08, 0.92) * h
        sel = _shape_mask(cls, size, cx, cy, r, rng.uniform(0, 2 * math.pi))
        if sel.sum() < 12:  # almost entirely outside the frame
            continue
        image[sel] = _texture(rng, sel, image[sel].mean(0))
        mask[sel] = cls
    pil = Image.fromarray(image.clip(0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        pil = pil.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    image = np.asarray(pil, dtype=float) + rng.normal(0, rng.uniform(2, 6), (h, w, 3))
    return image.clip(0, 255).astype(np.uint8), mask


def write_scenes(
    root: str | Path,
    counts: dict[str, int],
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write scenes in the mask-folder layout: ``root/{split}/images|masks`` + classes.yaml.

    Seeds differ per split, so no scene appears in two splits.
    """
    import yaml

    root = Path(root)
    offsets = {"train": 0, "val": 1_000_000, "test": 2_000_000}
    total = sum(counts.values())
    bar = tqdm(total=total, desc="scenes", unit="img", disable=not progress, leave=False)
    for split, n in counts.items():
        for i in range(n):
            image, mask = generate_scene(seed * 10_000_019 + offsets[split] + i, size)
            name = f"scene_{i:05d}.png"
            write_png(root / split / "images" / name, image)
            write_png(root / split / "masks" / name, mask.astype(np.uint8), SCENE_CLASSES.colours)
            bar.update()
    bar.close()
    (root / "classes.yaml").write_text(yaml.safe_dump(SCENE_CLASSES.to_dict(), sort_keys=False))
    return root
