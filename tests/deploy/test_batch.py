"""Batch prediction: file lists, shards, resuming after a kill, bad images, and refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pixelseg
from pixelseg.cli.main import main
from pixelseg.data.imageio import list_images, read_image
from pixelseg.deploy.batch import (
    PredictionLog,
    PredictOptions,
    Shard,
    mirrored_name,
    predict_stream,
    read_file_list,
)
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
            resolve=lambda e: root / e,
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


def test_mirrored_names_refuse_escapes():
    assert mirrored_name("/data/x/img.jpg") == "data/x/img"
    assert mirrored_name("a/b.c.png") == "a/b.c"
    assert mirrored_name("x/../y/img.png") == "y/img"
    outside = mirrored_name("../up/img.png")  # mirrored by its absolute path, inside --out
    assert not outside.startswith("..") and outside.endswith("up/img")


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
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(log_records(out))
    assert before >= 5
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
    assert next(iter(stream)) == "dir0/img_0.jpg"  # a generator: nothing read ahead
    taken = list(Shard(3, 1000).take(read_file_list(listing)))
    assert len(taken) == 200 and taken[0] == "dir3/img_3.jpg"
    assert os.path.getsize(listing) > 1_000_000


def test_options_object_round_trips_into_the_manifest():
    assert PredictOptions(scales=(1.0, 0.5)).manifest()["scales"] == [1.0, 0.5]
