"""Batch prediction: file lists, shards, resuming after a kill, bad images, and refusals."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pixelseg
from pixelseg.cli.main import main
from pixelseg.data.imageio import list_images, read_image
from pixelseg.deploy import batch_pipeline
from pixelseg.deploy.batch import predict_stream
from pixelseg.deploy.batch_journal import PredictionLog
from pixelseg.deploy.batch_listing import ListLayout, Shard, read_file_list
from pixelseg.deploy.batch_pipeline import PredictOptions
from pixelseg.errors import PixelsegError


@pytest.fixture
def nested_images(deploy_scenes, tmp_path) -> tuple[Path, Path]:
    """Two folders holding images of the same names, plus one of another size, and a list."""
    root = tmp_path / "imgs"
    lines = []
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        for src in list_images(deploy_scenes / "test" / "images"):
            shutil.copy(src, root / folder / src.name)
            lines.append(f"{folder}/{src.name}")
    Image.fromarray(np.full((21, 27, 3), 90, np.uint8)).save(root / "a" / "odd.png")
    lines.insert(3, "a/odd.png")
    listing = tmp_path / "list.txt"
    listing.write_text("# images to segment\n" + "\n".join(lines) + "\n\n")
    return root, listing


def log_records(out: Path, pattern: str = "predictions*.jsonl") -> list[dict]:
    return [json.loads(x) for f in sorted(out.glob(pattern)) for x in f.read_text().splitlines()]


def test_file_list_keeps_folders_and_records_each_image_once(trained_run, nested_images, tmp_path):
    root, listing = nested_images
    out = tmp_path / "out"
    args = ["predict", str(trained_run()), "--files", str(listing), "--root", str(root)]
    assert main([*args, "--out", str(out), "--quiet", "--batch-size", "3"]) == 0
    records = log_records(out)
    assert sorted(r["image"] for r in records) == sorted(read_file_list(listing))
    assert (out / "a" / "scene_00000_mask.png").is_file()
    assert (out / "b" / "scene_00000_mask.png").is_file()  # same stem, other folder
    assert Image.open(out / "a" / "odd_mask.png").size == (27, 21)
    # Batched outputs equal one-image-at-a-time prediction.
    predictor = pixelseg.load(trained_run())
    for name in ("a/scene_00002", "b/scene_00005", "a/odd"):
        image = read_image(next(root.glob(f"{name}.png")))
        expect = predictor.predict(image)
        assert (np.asarray(Image.open(out / f"{name}_mask.png")) == expect).all()
    # A re-run has nothing left to do.
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert len(log_records(out)) == len(records)


def test_parts_split_a_list_without_overlap(trained_run, nested_images, tmp_path):
    root, listing = nested_images
    predictor = pixelseg.load(trained_run())
    seen = []
    for k in range(3):
        summary = predict_stream(
            predictor,
            read_file_list(listing),
            tmp_path / "out",
            shard=Shard(k, 3),
            locate=ListLayout(root).locate,
            progress=False,
        )
        assert summary.processed == len(log_records(tmp_path / "out", summary.log.name))
        seen += [r["image"] for r in log_records(tmp_path / "out", summary.log.name)]
    assert sorted(seen) == sorted(read_file_list(listing))  # every image once, in one part


def test_shard_combines_scheduler_parts_with_torchrun_ranks():
    env = {"RANK": "1", "WORLD_SIZE": "2"}
    assert Shard.resolve(3, 2, env) == Shard(5, 6)
    assert Shard.resolve(env={}) == Shard(0, 1)
    assert list(Shard(1, 3).take(str(i) for i in range(8))) == ["1", "4", "7"]
    with pytest.raises(PixelsegError, match="part-id"):
        Shard.resolve(2, 2, {})


def test_list_layout_mirrors_entries_inside_the_base_and_refuses_the_rest(tmp_path):
    base = tmp_path / "data"
    layout = ListLayout(base)
    assert layout.locate("a/b.c.png") == (base / "a" / "b.c.png", "a/b.c")
    assert layout.locate(f"{base}/x/img.jpg") == (base / "x" / "img.jpg", "x/img")
    assert layout.locate("x/../y/img.png") == (base / "y" / "img.png", "y/img")
    for entry in (f"/{base}/x.png", "/etc/x.png", "../up/img.png", "a/../../x.png", ".", "a/.."):
        with pytest.raises(PixelsegError, match=r"--root|not an image path"):
            layout.locate(entry)
    assert ListLayout("/").locate("/tmp/x.png")[1] == "tmp/x"
    with pytest.raises(PixelsegError, match="--root"):
        ListLayout("/").locate("//tmp/x.png")  # POSIX keeps a leading "//": another root


def test_list_entries_outside_the_base_fail_alone_and_nothing_lands_outside_out(
    trained_run, deploy_scenes, tmp_path, monkeypatch, capsys
):
    base = tmp_path / "lists"
    (base / "in").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    src = list_images(deploy_scenes / "test" / "images")[0]
    for folder in (base / "in", elsewhere):
        shutil.copy(src, folder / "x.png")
    hostile = [f"/{elsewhere}/x.png", str(elsewhere / "x.png"), "../elsewhere/x.png"]
    listing = base / "list.txt"
    listing.write_text("\n".join(["in/x.png", *hostile]) + "\n")
    monkeypatch.chdir(elsewhere)  # relative entries are read from the list's folder, not here
    out = tmp_path / "out"
    args = ["predict", str(trained_run()), "--files", str(listing), "--out", str(out), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --root" in err and "and 2 more, logged" in err
    records = {r["image"]: r for r in log_records(out)}
    assert "error" not in records["in/x.png"] and (out / "in" / "x_mask.png").is_file()
    for entry in hostile:
        assert entry in records[entry]["error"] and "--root" in records[entry]["error"]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["x.png"]  # nothing written beside
    assert all(out in p.parents for p in out.rglob("*"))
    # --root that holds them all: every entry is inside, mirrored by its path below the root.
    (base / "l2.txt").write_text(f"{elsewhere / 'x.png'}\nlists/in/x.png\n")
    args = ["predict", str(trained_run()), "--files", str(base / "l2.txt"), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "o2"), "--root", str(tmp_path)]) == 0
    assert (tmp_path / "o2" / "elsewhere" / "x_mask.png").is_file()
    assert (tmp_path / "o2" / "lists" / "in" / "x_mask.png").is_file()


def test_killed_job_resumes_with_every_image_once(trained_run, deploy_scenes, tmp_path):
    # 60 images, one at a time, so there is a middle to kill the job in.
    root = tmp_path / "many"
    root.mkdir()
    sources = list_images(deploy_scenes / "test" / "images")
    for i in range(60):
        shutil.copy(sources[i % len(sources)], root / f"img_{i:03d}.png")
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted(root.iterdir())))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pixelseg", "predict", str(trained_run()), "--files", str(listing)]
    cmd += ["--out", str(out), "--quiet", "--batch-size", "1", "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "predictions.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and log.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the job ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = len(log_records(out))
    assert 5 <= before < 60  # killed mid-job: some images logged, not all
    with open(log, "ab") as f:  # as if killed inside the write of a line
        f.write(b'{"image": "torn')
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    records = log_records(out)
    images = [r["image"] for r in records]
    assert sorted(images) == sorted(read_file_list(listing)) and len(set(images)) == 60
    assert not list(out.rglob("*.tmp"))  # no temporary file left behind
    for r in records[::7]:
        assert Image.open(r["mask"]).size == (40, 32)


def test_bad_image_is_logged_the_rest_done_and_exit_non_zero(trained_run, deploy_scenes, tmp_path):
    images = tmp_path / "imgs"
    shutil.copytree(deploy_scenes / "test" / "images", images)
    good = (images / "scene_00001.png").read_bytes()
    (images / "scene_00001.png").write_bytes(good[: len(good) // 2])  # truncated
    out = tmp_path / "out"
    code = main(["predict", str(trained_run()), str(images), "--out", str(out), "--quiet"])
    assert code == 2
    records = json.loads((out / "predictions.json").read_text())
    bad = [r for r in records if "error" in r]
    assert [Path(r["image"]).name for r in bad] == []  # errors are in the log, not the table
    logged = log_records(out)
    assert [Path(r["image"]).name for r in logged if "error" in r] == ["scene_00001.png"]
    assert len(records) == 5 and not (out / "scene_00001_mask.png").exists()


def test_refusals_name_the_problem(trained_run, deploy_scenes, tmp_path, capsys):
    run, images = str(trained_run()), str(deploy_scenes / "test" / "images")
    (tmp_path / "file").write_text("x")
    assert main(["predict", run, images, "--out", str(tmp_path / "file"), "--quiet"]) == 2
    assert "not a folder" in capsys.readouterr().err
    out = str(tmp_path / "o")
    assert main(["predict", run, images, "--out", out, "--quiet"]) == 0
    assert main(["predict", run, images, "--out", out, "--quiet", "--tta"]) == 2
    assert "other options" in capsys.readouterr().err
    dup = tmp_path / "dup"
    dup.mkdir()
    shutil.copy(list_images(Path(images))[0], dup / "x.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(dup / "x.jpg")
    assert main(["predict", run, str(dup), "--out", str(tmp_path / "d"), "--quiet"]) == 2
    assert "same name" in capsys.readouterr().err
    assert main(["predict", run, "--files", str(tmp_path / "none.txt"), "--out", out]) == 2
    assert "file list not found" in capsys.readouterr().err


def test_log_reader_drops_a_torn_line_and_retries_failures(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"image": "a"}\n{"image": "b", "error": "x"}\n{"image": "c"}\n{"image": "d')
    log = PredictionLog(path)
    log.close()
    assert log.done == {"a", "c"}
    assert path.read_text().endswith('{"image": "c"}\n')


def test_file_list_is_streamed(tmp_path):
    listing = tmp_path / "big.txt"
    with open(listing, "w") as f:
        for i in range(200_000):
            f.write(f"dir{i % 97}/img_{i}.jpg\n")
    stream = read_file_list(listing)
    assert next(iter(stream)) == "dir0/img_0.jpg"
    tracemalloc.start()
    try:
        taken = list(Shard(3, 1000).take(read_file_list(listing)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(taken) == 200 and taken[0] == "dir3/img_3.jpg"
    # 200k lines held as strings would take over 12 MB; streamed, a few buffers.
    assert peak < os.path.getsize(listing) / 10


def test_options_object_round_trips_into_the_manifest():
    assert PredictOptions(scales=(1.0, 0.5)).manifest()["scales"] == [1.0, 0.5]


def test_one_part_predicts_an_image_once_and_refuses_a_second_with_its_outputs(
    trained_run, deploy_scenes, tmp_path, capsys
):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    shutil.copy(list_images(deploy_scenes / "test" / "images")[0], root / "a" / "x.png")
    Image.fromarray(np.full((32, 40, 3), 200, np.uint8)).save(root / "a" / "x.jpg")
    listing = root / "list.txt"
    listing.write_text("a/x.png\na/x.jpg\na/x.png\n./a/x.png\n")
    out = tmp_path / "out"
    args = ["predict", str(trained_run()), "--files", str(listing), "--out", str(out), "--quiet"]
    args += ["--root", str(root)]  # the default, given: the list is in the root folder
    assert main([*args, "--batch-size", "1"]) == 2
    assert "a/x.jpg: its outputs a/x_* would overwrite those of a/x.png" in capsys.readouterr().err
    records = log_records(out)
    assert [r["image"] for r in records if "error" not in r] == ["a/x.png"]  # once
    assert [r["image"] for r in records if "error" in r] == ["a/x.jpg"]
    expect = pixelseg.load(trained_run()).predict(read_image(root / "a" / "x.png"))
    assert (np.asarray(Image.open(out / "a" / "x_mask.png")) == expect).all()
    # A re-run keeps the same first owner of the outputs: x.png is done, x.jpg refused again.
    assert main(args) == 2
    assert [r["image"] for r in log_records(out)[len(records) :]] == ["a/x.jpg"]
    assert not list(out.rglob("*.tmp"))


def test_a_write_error_fails_that_image_and_a_full_disk_stops_the_job(
    trained_run, deploy_scenes, tmp_path, monkeypatch, capsys
):
    root = tmp_path / "imgs"
    root.mkdir()
    src = list_images(deploy_scenes / "test" / "images")[0]
    long = "n" * 250  # a name the file system takes, but not with _mask.png added
    for name in (long, "a", "b"):
        shutil.copy(src, root / f"{name}.png")
    listing = root / "list.txt"
    listing.write_text(f"{long}.png\na.png\nb.png\n")
    out = tmp_path / "out"
    args = ["predict", str(trained_run()), "--files", str(listing), "--out", str(out), "--quiet"]
    args += ["--root", str(root)]  # the default, given: the list is in the root folder
    assert main([*args, "--batch-size", "1", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the outputs of" in err and "name too long" in err
    records = {r["image"]: r for r in log_records(out)}
    assert "error" in records[f"{long}.png"] and "error" not in records["b.png"]
    assert (out / "b_mask.png").is_file() and not list(out.rglob("*.tmp"))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "c_mask.png"))

    monkeypatch.setattr(batch_pipeline, "write_outputs", full)
    (root / "c.png").write_bytes(src.read_bytes())
    listing.write_text("c.png\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "c_mask.png: cannot write the outputs of c.png (No space left" in err
    assert "the job stopped" in err and "c.png" not in {r["image"] for r in log_records(out)}


def test_a_second_process_on_a_running_part_is_refused(trained_run, deploy_scenes, tmp_path):
    images = str(deploy_scenes / "test" / "images")
    out = tmp_path / "out"
    out.mkdir()
    log = out / Shard(1, 2).log_name()
    with open(log, "a") as held:  # as the running process holds it
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        args = [str(trained_run()), images, "--out", str(out), "--quiet"]
        code = subprocess.run(
            [
                sys.executable,
                "-m",
                "pixelseg",
                "predict",
                *args,
                "--num-parts",
                "2",
                "--part-id",
                "1",
            ],
            capture_output=True,
            text=True,
        )
    assert code.returncode == 2
    assert code.stderr.count("\n") == 1 and "another process is running this part" in code.stderr
    assert log.read_text() == ""
    # Released (its process ended): the part runs.
    assert main(["predict", *args, "--num-parts", "2", "--part-id", "1"]) == 0


def test_outputs_are_on_disk_before_the_log_line_that_marks_them_done(
    trained_run, deploy_scenes, tmp_path, monkeypatch
):
    synced: set[str] = set()
    real_fsync = os.fsync

    def fsync(fd):
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    order: list[tuple[str, bool]] = []
    real_append = PredictionLog.append

    def append(self, record):
        if "mask" in record:  # by then, the mask's data and its folder entry are durable
            mask = Path(record["mask"]).resolve()
            tmps = [p for p in synced if Path(p).name.startswith(f".{mask.name}.")]
            order.append((record["image"], bool(tmps) and str(mask.parent) in synced))
        return real_append(self, record)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(PredictionLog, "append", append)
    images = str(deploy_scenes / "test" / "images")
    args = [str(trained_run()), images, "--out", str(tmp_path / "o"), "--quiet"]
    assert main(["predict", *args]) == 0
    assert len(order) == 6 and all(ok for _, ok in order)
