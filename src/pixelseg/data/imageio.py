"""Reading and writing images and label maps. Every decoding error becomes a PixelsegError
that names the file, so one bad file never ends a run with a traceback."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import PixelsegError
from ..files import atomic_write_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# The Pillow formats of those files, the only ones opened: Pillow knows dozens more (EPS runs
# Ghostscript, and a GIF or PSD named .png would be decoded by their plugins).
PIL_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")  # JPEG also opens cameras' MPO files
NOT_AN_IMAGE = (
    "unreadable or truncated image, or not a PNG, JPEG, BMP, TIFF or WebP image (the formats "
    "pixelseg reads)"
)

# Decompression-bomb guard: refuse images with more pixels than this (about 16k x 16k).
MAX_PIXELS = 268_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Over the limit must fail, not warn, also when files are decoded from a thread pool, where
# the catch_warnings in _open is not reliable (it swaps a process-wide filter list).
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class ImageTooLargeError(PixelsegError):
    """An image over a pixel limit (or a decompression bomb): refused before it is decoded."""


def _open(path: Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise PixelsegError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise PixelsegError(f"{path}: file is empty (0 bytes)")
    return _decode(path, str(path))


def _decode(source, name: str, max_pixels: int | None = None) -> Image.Image:
    """Open and decode a file or a file object, any failure a one-line PixelsegError naming
    ``name``; ``max_pixels`` is checked from the header, before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source, formats=PIL_FORMATS)
            w, h = img.size
            if max_pixels is not None and w * h > max_pixels:
                raise ImageTooLargeError(
                    f"{name}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,}"
                )
            img.load()  # decode now so truncated files fail here, not in a worker later
    except PixelsegError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(f"{name}: image too large to decode safely ({e})") from None
    except Image.UnidentifiedImageError:
        raise PixelsegError(f"{name}: {NOT_AN_IMAGE}") from None
    except Exception as e:  # decoders raise many types (OSError, SyntaxError, ValueError, ...)
        raise PixelsegError(f"{name}: unreadable or truncated image ({_reason(e)})") from None
    return img


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB with its EXIF orientation applied."""
    return _to_rgb(_open(Path(path)), str(path))


def decode_image_bytes(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``read_image`` for bytes (an upload): the size is checked against ``max_pixels`` from
    the header, before any pixel is decoded. ``name`` is what errors call the image."""
    import io

    if not data:
        raise PixelsegError(f"{name}: empty file (0 bytes)")
    return _to_rgb(_decode(io.BytesIO(data), name, max_pixels), name)


def _to_rgb(img: Image.Image, name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB with the EXIF orientation applied; 16-bit gray scaled to 8 bits.
    Damaged EXIF (a PNG's text chunk that is not hex, a bad eXIf chunk) is a PixelsegError."""
    try:
        img = ImageOps.exif_transpose(img)
        if img.mode == "I;16" or img.mode == "I":
            # 16-bit grayscale: scale to 8 bits rather than clipping.
            arr = np.asarray(img, dtype=np.float64)
            arr = (arr / max(arr.max(), 1.0) * 255.0).astype(np.uint8)
            return np.repeat(arr[:, :, None], 3, axis=2)
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except Exception as e:  # EXIF parsing raises ValueError, SyntaxError, struct.error, ...
        raise PixelsegError(f"{name}: damaged image metadata or pixels ({_reason(e)})") from None


def read_mask(path: str | Path) -> np.ndarray:
    """Read a label map as (H, W) int64 class ids.

    Single-channel and palette PNGs hold class ids directly (a palette PNG's pixel values are
    palette indices). RGB masks must be mapped through a colour table by the caller
    (``read_colour_mask``).
    """
    img = _open(Path(path))
    if img.mode in ("L", "P", "I", "I;16", "1"):
        return np.asarray(img, dtype=np.int64).copy()
    if img.mode in ("RGB", "RGBA"):
        arr = np.asarray(img)
        rgb = arr[:, :, :3]
        if (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all():
            return rgb[:, :, 0].astype(np.int64)
        raise PixelsegError(
            f"{path}: mask is a colour (RGB) image; give a classes file with colours so it can "
            "be mapped to class ids, or save it as a palette or single-channel PNG"
        )
    raise PixelsegError(f"{path}: unsupported mask mode {img.mode!r}")


def read_colour_mask(path: str | Path, colours: list[tuple[int, int, int]]) -> np.ndarray:
    """Map an RGB mask to class ids through a colour table; unknown colours raise."""
    img = _open(Path(path))
    if img.mode in ("P", "L", "I", "I;16"):  # palette indices / gray values are class ids
        return np.asarray(img, dtype=np.int64).copy()
    rgb = np.asarray(img.convert("RGB"), dtype=np.int64)
    key = (rgb[:, :, 0] << 16) | (rgb[:, :, 1] << 8) | rgb[:, :, 2]
    out = np.full(key.shape, -1, dtype=np.int64)
    for cls, (r, g, b) in enumerate(colours):
        out[key == ((r << 16) | (g << 8) | b)] = cls
    if (out < 0).any():
        bad = np.unique(key[out < 0])[:5]
        shown = ", ".join(f"({k >> 16},{(k >> 8) & 255},{k & 255})" for k in bad)
        raise PixelsegError(f"{path}: colours not in the class table: {shown}")
    return out


# zlib level 1: about 3x faster than PIL's default (6) on 360x480 overlays, files ~20% larger;
# encoding, not the model, was the larger share of a lightseg prediction on 2 cores.
PNG_COMPRESS_LEVEL = 1


def encode_png(array: np.ndarray, palette: list[tuple[int, int, int]] | None = None) -> bytes:
    """An RGB image as PNG bytes, or a class-id mask as a palette PNG when ``palette`` is given."""
    import io

    if palette is not None:
        img = Image.fromarray(array.astype(np.uint8), mode="P")
        flat = [v for c in palette for v in c]
        img.putpalette(flat + [0] * (768 - len(flat)))
    else:
        img = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def write_png(
    path: str | Path, array: np.ndarray, palette: list[tuple[int, int, int]] | None = None
) -> None:
    """Write an RGB image, or a class-id mask as a palette PNG when ``palette`` is given."""
    atomic_write_bytes(path, encode_png(array, palette))


# Listings by (folder, its mtime): one command opens a split several times (training, then
# evaluation; the val split infers its classes from the train masks). Adding, removing or
# renaming a file changes the folder's mtime, so a changed folder is listed again.
_LISTINGS: dict[tuple[str, int], list[Path]] = {}


def list_images(folder: Path) -> list[Path]:
    """The folder's image files, sorted by name (as strings: sorting 100k Path objects costs
    seconds of Path.__lt__)."""
    folder = Path(folder)
    key = (str(folder), folder.stat().st_mtime_ns)
    if key not in _LISTINGS:
        with os.scandir(folder) as entries:
            names = sorted(
                e.name for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
            )
        _LISTINGS[key] = [folder / name for name in names]
    return list(_LISTINGS[key])
