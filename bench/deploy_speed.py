"""Deployment speed, in one run: onnxruntime against PyTorch eager, and batch prediction against
the sequential predict loop, on CamVid val (or generated images when it is absent).

    python bench/deploy_speed.py [--data ../shared/datasets/camvid] [--models lightseg,unet]
        [--inference-only]

A model is ``NAME`` or ``NAME:knob=value:...``, e.g. the plan's pretrained pick beside the
from-scratch lightseg: ``--models lightseg:encoder=efficientnet_lite0:width=32,lightseg``.

1. Inference: img/s of the exported ONNX graph under onnxruntime and of the PyTorch model, both
   on the same threads, at 360x480 (batch 1 and 4).
2. Batch prediction over the val images (lightseg): the sequential loop `pixelseg predict`
   ran before the batch pipeline (one image at a time: decode, forward, three PNGs at PIL's
   default compression), against `pixelseg predict --files` with the torch and the ONNX
   backends, all writing the same files.
3. Kill and resume: the batch job killed halfway (SIGKILL) and re-run; every image must be in
   the log exactly once.

Models are trained for two steps: speed does not depend on the weights. Writes JSON to
bench/results/deploy_speed.json. Run it alone: other jobs on the cores skew every figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import pixelseg
from pixelseg.analysis.instances import uncertainty_map, uncertainty_to_image
from pixelseg.data.imageio import list_images, read_image
from pixelseg.data.overlay import colourise, overlay
from pixelseg.data.scenes import write_scenes
from pixelseg.deploy.batch import predict_stream
from pixelseg.deploy.batch_listing import ListLayout
from pixelseg.deploy.batch_pipeline import PredictOptions
from pixelseg.deploy.onnx_export import export_onnx
from pixelseg.files import atomic_write_bytes

SIZE = (360, 480)


def mini_copy(data: Path, out: Path) -> Path:
    """A few CamVid frames in its layout (same classes): enough to make a run whose speed is
    the model's, without validating 101 frames after two training steps."""
    if not (data / "trainannot").is_dir():
        return data
    for split, n in (("train", 4), ("val", 2)):
        for sub in (split, f"{split}annot"):
            (out / sub).mkdir(parents=True, exist_ok=True)
            for f in sorted((data / sub).iterdir())[:n]:
                shutil.copy(f, out / sub / f.name)
    return out


def train_run(data: Path, model: str, out: Path) -> Path:
    """A two-step run of ``model`` (``NAME`` or ``NAME:knob=value:...``)."""
    data = mini_copy(data, out.parent / "mini-data")
    name, *knobs = model.split(":")
    cfg = pixelseg.load_config(
        overrides=[
            f"data.root={data}",
            f"model.name={name}",
            *(f"model.{k}" for k in knobs),
            f"out_dir={out}",
            f"name={model.replace(':', '-').replace('=', '')}",
            "train.epochs=1",
            "train.max_steps_per_epoch=2",
            "train.batch_size=2",
            "train.device=cpu",
        ]
    )
    return pixelseg.train(cfg, progress=False).run_dir


def images_per_second(fn, batch: int, seconds: float = 8.0) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += batch
    return n / (time.perf_counter() - t0)


def inference_speed(run: Path, export: Path, threads: int, seconds: float) -> list[dict]:
    torch.set_num_threads(threads)
    model = pixelseg.load(run, device="cpu").model
    onnx_model = pixelseg.load(export, threads=threads).model
    rows = []
    for batch in (1, 4):
        x = torch.rand(batch, 3, *SIZE) * 255
        with torch.no_grad():
            eager = images_per_second(lambda: model(x), batch, seconds)  # noqa: B023
        ort = images_per_second(lambda: onnx_model(x), batch, seconds)  # noqa: B023
        rows.append({"batch": batch, "torch_img_s": eager, "onnx_img_s": ort, "ratio": ort / eager})
    return rows


def png_default(array, palette=None) -> bytes:
    """PNG as `pixelseg predict` wrote it before the batch pipeline (PIL's default level 6)."""
    img = Image.fromarray(array.astype(np.uint8), mode="P" if palette else None)
    if palette:
        img.putpalette([v for c in palette for v in c] + [0] * (768 - 3 * len(palette)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def sequential_predict(predictor, paths: list[Path], out: Path) -> float:
    """The loop predict ran before: one image at a time, nothing overlapped."""
    t0 = time.perf_counter()
    for path in paths:
        image = read_image(path)
        probs = predictor.predict_proba(image)
        class_map = probs.argmax(0)
        colours = predictor.classes.colours
        atomic_write_bytes(out / f"{path.stem}_mask.png", png_default(class_map, colours))
        atomic_write_bytes(
            out / f"{path.stem}_overlay.png", png_default(overlay(image, class_map, colours))
        )
        heat = uncertainty_to_image(uncertainty_map(probs))
        atomic_write_bytes(out / f"{path.stem}_uncertainty.png", png_default(heat))
    assert colourise  # the same colour table the pipeline uses
    return len(paths) / (time.perf_counter() - t0)


def pipeline_predict(model_path: Path, listing: Path, out: Path, batch: int, workers: int):
    predictor = pixelseg.load(model_path)
    summary = predict_stream(
        predictor,
        listing.read_text().split(),
        out,
        PredictOptions(batch_size=batch, workers=workers),
        locate=ListLayout("/").locate,  # absolute paths, mirrored whole under out
        progress=False,
    )
    return summary.images_per_second


def kill_and_resume(run: Path, listing: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "pixelseg", "predict", str(run), "--files", str(listing)]
    cmd += ["--root", "/", "--out", str(out), "--quiet"]
    total = len(listing.read_text().split())
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "predictions.jsonl"
    while proc.poll() is None:
        if log.is_file() and log.read_bytes().count(b"\n") >= total // 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = log.read_bytes().count(b"\n")
    rerun = subprocess.run(cmd, capture_output=True)
    images = [json.loads(x)["image"] for x in log.read_text().splitlines()]
    return {
        "images": total,
        "logged_before_kill": before,
        "rerun_exit": rerun.returncode,
        "logged_after": len(images),
        "distinct": len(set(images)),
        "every_image_once": sorted(images) == sorted(listing.read_text().split()),
    }


def batch_prediction(runs: dict, tmp: Path, paths: list, listing: Path, args) -> dict:
    """Parts 2 and 3: the batch pipeline against the sequential loop, then kill and resume."""
    model = "lightseg" if "lightseg" in runs else next(iter(runs))
    run, export = runs[model], tmp / f"{runs[model].name}.onnx"
    seq_out = tmp / "seq"
    seq_out.mkdir()
    batch = {
        "model": model,
        "images": len(paths),
        "sequential_img_s": sequential_predict(pixelseg.load(run), paths, seq_out),
    }
    for backend, path in (("torch", run), ("onnx", export)):
        out = tmp / f"pipe-{backend}"
        batch[f"pipeline_{backend}_img_s"] = pipeline_predict(
            path, listing, out, args.batch_size, args.workers
        )
    for backend in ("torch", "onnx"):
        batch[f"ratio_{backend}"] = batch[f"pipeline_{backend}_img_s"] / batch["sequential_img_s"]
    print(
        f"batch prediction, {len(paths)} images, {model}: sequential "
        f"{batch['sequential_img_s']:.2f} img/s; pipeline torch "
        f"{batch['pipeline_torch_img_s']:.2f} ({batch['ratio_torch']:.2f}x), onnx "
        f"{batch['pipeline_onnx_img_s']:.2f} ({batch['ratio_onnx']:.2f}x)"
    )
    resumed = kill_and_resume(run, listing, tmp / "killed")
    print("kill and resume:", resumed)
    return {"batch": batch, "kill_and_resume": resumed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/camvid")
    ap.add_argument("--models", default="lightseg,unet")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0, help="timing per inference figure")
    ap.add_argument("--limit", type=int, help="use only the first N val images (a smoke run)")
    ap.add_argument("--out", default="bench/results/deploy_speed.json")
    ap.add_argument("--inference-only", action="store_true", help="only the img/s table (part 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {"threads": args.threads, "size": SIZE, "inference": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = Path(args.data)
        if not (data / "val").is_dir():
            print(f"{data} not found: using 101 generated 360x480 scenes")
            data = tmp / "scenes"
            write_scenes(data, {"train": 4, "val": 101}, size=SIZE, progress=False)
            val = data / "val" / "images"
        else:
            val = data / "val"
        paths = list_images(val)[: args.limit]
        listing = tmp / "val.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        runs = {}
        for model in args.models.split(","):
            runs[model] = train_run(data, model, tmp / "runs")
            export = tmp / f"{runs[model].name}.onnx"
            export_onnx(runs[model], export, size=SIZE)
            rows = inference_speed(runs[model], export, args.threads, args.seconds)
            results["inference"][model] = rows
            for r in rows:
                print(
                    f"{model:40s} batch {r['batch']}: torch {r['torch_img_s']:6.2f} img/s, "
                    f"onnxruntime {r['onnx_img_s']:6.2f} img/s, ratio {r['ratio']:.2f}"
                )
        if not args.inference_only:
            results.update(batch_prediction(runs, tmp, paths, listing, args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
