"""Atomic writes: the final file follows the umask like open() would, and a failed write
leaves neither a partial target nor a temporary file."""

from __future__ import annotations

import os
import stat

import pytest

from pixelseg.files import atomic_write_bytes, atomic_write_text


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_final_file_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_bytes(tmp_path / "b.bin", b"y", fsync=True)
        with open(tmp_path / "plain", "w") as f:
            f.write("z")
    finally:
        os.umask(old)
    plain = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert plain == 0o666 & ~umask
    for name in ("a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == plain


def test_failed_write_leaves_no_temporary_file(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "a.txt", "not bytes")  # type: ignore[arg-type]
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_imageio_re_exports_the_one_implementation():
    from pixelseg import files
    from pixelseg.data import imageio

    assert imageio.atomic_write_bytes is files.atomic_write_bytes
    assert imageio.atomic_write_text is files.atomic_write_text


def test_single_writer_replaces_the_temporary_file_a_killed_run_left(tmp_path):
    # A kill between the temporary file's creation and the rename leaves `.NAME.tmp`; the run
    # that redoes the image writes the same name, so nothing stays behind.
    out = tmp_path / "img_mask.png"
    (tmp_path / ".img_mask.png.tmp").write_bytes(b"half a PNG from a killed run, longer than new")
    atomic_write_bytes(out, b"new", single_writer=True)
    assert out.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img_mask.png"]
