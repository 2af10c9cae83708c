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


def test_imageio_writes_with_the_one_implementation():
    from pixelseg import files
    from pixelseg.data import imageio

    # PNGs are written by the one atomic writer; the text writer is imported from its home.
    assert imageio.atomic_write_bytes is files.atomic_write_bytes
    assert not hasattr(imageio, "atomic_write_text")


def test_a_writer_replaces_the_temporary_file_its_killed_run_left(tmp_path):
    # A kill between the temporary file's creation and the rename leaves `.NAME.WRITER.tmp`;
    # the run of the same writer that redoes the image removes it, so nothing stays behind.
    out = tmp_path / "img_mask.png"
    (tmp_path / ".img_mask.png.p0of1.tmp").write_bytes(b"half a PNG from a killed run")
    atomic_write_bytes(out, b"new", writer="p0of1")
    assert out.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img_mask.png"]


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
@pytest.mark.parametrize("writer", [None, "p0of1"])
def test_a_symlink_planted_in_the_folder_never_redirects_the_write(tmp_path, writer):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "shared"
    out.mkdir()
    # At the writer's temporary name (and the fixed name older versions used), and at the
    # final name itself.
    for name in (".x.p0of1.tmp", ".x.tmp", "x"):
        (out / name).symlink_to(victim)
    atomic_write_bytes(out / "x", b"output", writer=writer)
    assert victim.read_bytes() == b"precious"
    assert (out / "x").read_bytes() == b"output" and not (out / "x").is_symlink()


@pytest.mark.skipif(os.name != "posix", reason="O_NOFOLLOW")
def test_two_writers_never_share_a_temporary_file(tmp_path, monkeypatch):
    names = []
    real_open = os.open

    def spy(path, flags, mode=0o777):
        names.append(os.path.basename(path))
        assert flags & os.O_EXCL and flags & os.O_NOFOLLOW  # a new file, never a link's target
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spy)
    for writer in ("p0of2", "p1of2", None, None):
        atomic_write_bytes(tmp_path / "x_mask.png", b"x", writer=writer)
    assert len(set(names)) == 4
