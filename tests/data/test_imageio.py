"""Decoding hostile files: any failure is one PixelsegError line naming the file, and only the
formats pixelseg documents are opened (never EPS, which runs Ghostscript, nor a renamed GIF)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from dataset_builders import BAD_EXIF_CHUNK, EPS, RAW_EXIF_NOT_HEX
from PIL import Image

from pixelseg.data.file_facts import BadFile, read_header
from pixelseg.data.imageio import decode_image_bytes, read_image, read_mask
from pixelseg.errors import PixelsegError


def gif_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "GIF")
    return buf.getvalue()


CASES = {
    "raw-exif-not-hex": (RAW_EXIF_NOT_HEX, "damaged image metadata"),  # ValueError in Pillow
    "bad-exif-chunk": (BAD_EXIF_CHUNK, "damaged image metadata"),  # SyntaxError in Pillow
    "eps-named-png": (EPS, "not a PNG, JPEG, BMP, TIFF or WebP image"),
    "gif-named-png": (gif_bytes(), "not a PNG, JPEG, BMP, TIFF or WebP image"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_decoder_turns_a_hostile_file_into_one_line_naming_it(case, tmp_path):
    data, words = CASES[case]
    path = tmp_path / f"{case}.png"
    path.write_bytes(data)
    for decode in (lambda: read_image(path), lambda: decode_image_bytes(data, path.name)):
        with pytest.raises(PixelsegError) as e:
            decode()
        message = str(e.value)
        assert path.name in message and words in message and "\n" not in message
    with pytest.raises(BadFile, match=path.name):  # check-data and the training pre-check
        read_header(path)


@pytest.mark.parametrize("case", ["eps-named-png", "gif-named-png"])
def test_masks_of_other_formats_are_refused_too(case, tmp_path):
    path = tmp_path / "mask.png"
    path.write_bytes(CASES[case][0])
    with pytest.raises(PixelsegError, match="mask.png: unreadable.* not a PNG"):
        read_mask(path)


def test_the_documented_formats_still_read(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (9, 11, 3), dtype=np.uint8)
    for suffix in (".png", ".jpg", ".bmp", ".tif", ".webp"):
        Image.fromarray(image).save(tmp_path / f"x{suffix}")
        assert read_image(tmp_path / f"x{suffix}").shape == (9, 11, 3)
        assert read_header(tmp_path / f"x{suffix}").width == 11
