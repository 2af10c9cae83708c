"""A corpus of bad inputs, tried as a new user would: every command should answer each with one
line naming the file or key (exit 2), no traceback, and nothing half-written.

    python bench/bad_inputs.py [--only train,predict]

The cases cover the classes of failure: data files (every kind of broken image or mask, every
layout problem), folders (missing, a file where a folder goes), configuration values (every
section), and run-folder files (each file of a run missing, damaged or from another model).
Each case is built fresh in a temporary folder from one tiny trained run and tiny generated
scenes, and run in-process through ``pixelseg.cli.main``. Checked for every case:

- the exit code is the expected one (2 for refusals; 0 for the few inputs that must work, like
  resuming after a torn metrics line);
- stderr holds exactly one ``pixelseg: error:`` line and no ``Traceback``;
- a refused ``train`` left no run folder; no ``*.tmp`` file is left anywhere.

Prints a table of failures and totals, writes bench/results/bad_inputs.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pixelseg.cli.main import main
from pixelseg.data.scenes import write_scenes

TINY = [
    "model.width=4",
    "model.depth=2",
    "train.batch_size=4",
    "train.max_steps_per_epoch=1",
    "train.epochs=1",
    "train.device=cpu",
]


@dataclass
class Case:
    name: str
    group: str
    setup: Callable[[Path], list[str]]  # folder -> argv
    expect: int = 2


def scenes(root: Path) -> Path:
    write_scenes(root, {"train": 6, "val": 3, "test": 2}, size=(24, 32), progress=False)
    return root


def first(folder: Path, pattern: str = "*.png") -> Path:
    return sorted(folder.glob(pattern))[0]


def train_args(data: Path, tmp: Path, *extra: str, out_dir=None, name: str = "r") -> list[str]:
    out = out_dir or tmp / "runs"
    return ["train", "--quiet", "--data", str(data), "--out-dir", str(out), "--name", name] + [
        *TINY,
        *extra,
    ]


# --- data files and folders (pixelseg train and check-data) ---------------------------------


def data_case(mutate: Callable[[Path], None], *extra: str):
    def setup(tmp: Path) -> list[str]:
        data = scenes(tmp / "data")
        mutate(data)
        return train_args(data, tmp, *extra)

    return setup


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def to_jpeg_truncated(data: Path) -> None:
    img = first(data / "train" / "images")
    jpg = img.with_suffix(".jpg")
    Image.open(img).convert("RGB").save(jpg, quality=95)
    img.unlink()
    truncate(jpg, 0.6)


def exif_rotated_wrong_mask(data: Path) -> None:
    img = first(data / "train" / "images")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the image is read 32x24, its mask is 24x32
    jpg = img.with_suffix(".jpg")
    Image.open(img).convert("RGB").save(jpg, exif=exif.tobytes())
    img.unlink()


def mask_values(value: int):
    def mutate(data: Path) -> None:
        m = first(data / "train" / "masks")
        arr = np.array(Image.open(m))
        arr[0, :4] = value
        Image.fromarray(arr.astype(np.uint8)).save(m)

    return mutate


def wrong_size_mask(data: Path) -> None:
    m = first(data / "train" / "masks")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(m)


def rgb_mask(data: Path) -> None:
    m = first(data / "train" / "masks")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)).save(m)


def orphan_mask(data: Path) -> None:
    shutil.copy(first(data / "train" / "masks"), data / "train" / "masks" / "orphan.png")


def duplicate_stem(data: Path) -> None:
    img = first(data / "train" / "images")
    Image.open(img).convert("RGB").save(img.with_suffix(".jpg"))


def missing_mask(data: Path) -> None:
    first(data / "train" / "masks").unlink()


def empty_image(data: Path) -> None:
    first(data / "train" / "images").write_bytes(b"")


def text_image(data: Path) -> None:
    first(data / "train" / "images").write_text("not an image")


def bomb_image(data: Path) -> None:
    Image.fromarray(np.zeros((20000, 14000), np.uint8)).save(first(data / "train" / "images"))


def classes_file(text: str):
    def mutate(data: Path) -> None:
        (data / "classes.yaml").write_text(text)

    return mutate


def empty_train(data: Path) -> None:
    for f in (data / "train" / "images").iterdir():
        f.unlink()


def no_val(data: Path) -> None:
    shutil.rmtree(data / "val")


def truncated_val_mask(data: Path) -> None:
    truncate(first(data / "val" / "masks"))


def coco_bad_json(data: Path) -> None:
    (data / "annotations").mkdir()
    (data / "annotations" / "instances_train.json").write_text('{"images": [')


DATA_CASES = [
    Case("truncated PNG image", "data", data_case(lambda d: truncate(first(d / "train/images")))),
    Case("truncated JPEG image", "data", data_case(to_jpeg_truncated)),
    Case("zero-byte image", "data", data_case(empty_image)),
    Case("text file named .png", "data", data_case(text_image)),
    Case("decompression bomb image", "data", data_case(bomb_image)),
    Case("truncated mask", "data", data_case(lambda d: truncate(first(d / "train/masks")))),
    Case("truncated val mask", "data", data_case(truncated_val_mask)),
    Case("mask of another size", "data", data_case(wrong_size_mask)),
    Case("EXIF-rotated image, unrotated mask", "data", data_case(exif_rotated_wrong_mask)),
    Case("label value out of range", "data", data_case(mask_values(77))),
    Case("RGB mask, no colour table", "data", data_case(rgb_mask)),
    Case("mask without an image", "data", data_case(orphan_mask)),
    Case("two images with one stem", "data", data_case(duplicate_stem)),
    Case("image without a mask", "data", data_case(missing_mask)),
    Case("classes.yaml not YAML", "data", data_case(classes_file("names: [a, b\n"))),
    Case("classes.yaml duplicate names", "data", data_case(classes_file("names: [a, a, b]\n"))),
    Case("classes.yaml wrong type", "data", data_case(classes_file("names: 7\n"))),
    Case("empty training folder", "data", data_case(empty_train)),
    Case("no validation split", "data", data_case(no_val)),
    Case("COCO annotations not JSON", "data", data_case(coco_bad_json, "--format", "coco")),
    Case(
        "data root missing",
        "folders",
        lambda tmp: train_args(tmp / "nowhere", tmp),
    ),
    Case(
        "data root is a file",
        "folders",
        lambda tmp: train_args(_file(tmp / "data.txt"), tmp),
    ),
    Case(
        "--out-dir is a file",
        "folders",
        lambda tmp: [
            "train",
            "--quiet",
            "--data",
            str(scenes(tmp / "d")),
            "--out-dir",
            str(_file(tmp / "out")),
            *TINY,
        ],
    ),
    Case("unknown --format", "folders", data_case(lambda d: None, "--format", "pascal")),
    Case(
        "check-data on a missing folder",
        "folders",
        lambda tmp: ["check-data", str(tmp / "none")],
    ),
    Case(
        "check-data on a broken dataset",
        "data",
        lambda tmp: ["check-data", str(_broken(scenes(tmp / "d")))],
        expect=1,
    ),
]


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


def _broken(data: Path) -> Path:
    truncate(first(data / "train" / "images"))
    return data


# --- configuration values -------------------------------------------------------------------


def config_case(*overrides: str, config_text: str | None = None):
    def setup(tmp: Path) -> list[str]:
        data = scenes(tmp / "data")
        args = train_args(data, tmp, *overrides)
        if config_text is not None:
            cfg = tmp / "run.yaml"
            cfg.write_text(config_text)
            args += ["--config", str(cfg)]
        return args

    return setup


CONFIG_CASES = [
    Case(f"config {o}", "config", config_case(o))
    for o in [
        "train.nope=1",
        "nope.key=1",
        "train.lr=abc",
        "train.lr=-1",
        "train.epochs=0",
        "train.epochs=1.5",
        "train.batch_size=0",
        "train.optimizer=lbfgs",
        "train.schedule=exp",
        "train.loss=focal",
        "train.class_weights=[1,2]",
        "train.class_weights=mean",
        "train.device=tpu",
        "train.time_budget_minutes=-5",
        "train.accumulate=0",
        "train.ema_decay=2",
        "model.name=segformer",
        "model.width=abc",
        "model.width=-4",
        "model.depth=0",
        "model.activation=swish9",
        "model.nope=3",
        "data.resize=[0,10]",
        "data.resize=abc",
        "data.crop_size=[100000,100000]",
        "augment.rotation=abc",
        "augment.scale=[2,1]",
        "augment.corruptions=[nope]",
        "augment.corruption_p=3",
        "train.threads=-1",
        "name=../escape",
    ]
] + [
    Case("config file not YAML", "config", config_case(config_text="train: [1, 2\n")),
    Case("config file is a list", "config", config_case(config_text="- 1\n- 2\n")),
    Case("config unknown section", "config", config_case(config_text="trainer:\n  lr: 1\n")),
    Case(
        "config file missing",
        "config",
        lambda tmp: train_args(scenes(tmp / "d"), tmp) + ["--config", str(tmp / "missing.yaml")],
    ),
]


# --- run-folder files (eval, predict, resume, export, report) --------------------------------

_RUN: dict[str, Path] = {}


def trained_run(tmp: Path) -> tuple[Path, Path]:
    """A copy of one tiny trained run (trained once per process) and its data."""
    if "run" not in _RUN:
        base = Path(tempfile.mkdtemp(prefix="bad-inputs-run-"))
        data = scenes(base / "data")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(train_args(data, base, "train.epochs=2")) == 0
        _RUN["run"], _RUN["data"] = base / "runs" / "r", data
    run = tmp / "run"
    shutil.copytree(_RUN["run"], run)
    return run, _RUN["data"]


def ckpt(run: Path, tag: str, suffix: str) -> Path:
    """The data file ``tag`` names (the sidecar records it), or the plain layout's."""
    sidecar = json.loads((run / "checkpoints" / f"{tag}.json").read_text())
    names = [v for v in json.dumps(sidecar).split('"') if v.endswith(suffix)]
    wanted = [n for n in names if ("optim" in n) == ("optim" in suffix)]
    return run / "checkpoints" / Path(wanted[0] if wanted else f"{tag}{suffix}").name


def run_case(mutate: Callable[[Path, Path], list[str]]):
    def setup(tmp: Path) -> list[str]:
        run, data = trained_run(tmp)
        return mutate(run, data)

    return setup


def _eval(run: Path, data: Path) -> list[str]:
    return ["eval", str(run), "--split", "val", "--quiet", "--data", str(data)]


def _predict(run: Path, data: Path, out: Path | None = None) -> list[str]:
    out = out or run.parent / "preds"
    return ["predict", str(run), str(data / "test" / "images"), "--out", str(out), "--quiet"]


def corrupt_weights(run: Path, data: Path) -> list[str]:
    truncate(ckpt(run, "best", ".safetensors"))
    return _eval(run, data)


def other_model_weights(run: Path, data: Path) -> list[str]:
    side = run / "checkpoints" / "best.json"
    meta = json.loads(side.read_text())
    meta["model"]["knobs"]["width"] = 8  # the weights are of width 4
    side.write_text(json.dumps(meta))
    return _eval(run, data)


def sidecar_missing_key(key: str, command=_eval):
    def mutate(run: Path, data: Path) -> list[str]:
        side = run / "checkpoints" / "best.json"
        meta = json.loads(side.read_text())
        meta.pop(key, None)
        side.write_text(json.dumps(meta))
        return command(run, data)

    return mutate


def sidecar_not_json(run: Path, data: Path) -> list[str]:
    (run / "checkpoints" / "best.json").write_text("{oops")
    return _predict(run, data)


def no_best(run: Path, data: Path) -> list[str]:
    (run / "checkpoints" / "best.json").unlink()
    return _predict(run, data)


def truncated_optimizer(run: Path, data: Path) -> list[str]:
    truncate(ckpt(run, "last", ".optim.safetensors"))
    return ["train", "--quiet", "--resume", str(run), "train.epochs=3"]


def torn_metrics(run: Path, data: Path) -> list[str]:
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "train_lo')
    return ["train", "--quiet", "--resume", str(run), "train.epochs=3"]


def config_deleted(command: str):
    def mutate(run: Path, data: Path) -> list[str]:
        (run / "config.yaml").unlink()
        if command == "resume":
            return ["train", "--quiet", "--resume", str(run), "train.epochs=3"]
        return ["eval", str(run), "--split", "val", "--quiet"]

    return mutate


def config_damaged(run: Path, data: Path) -> list[str]:
    (run / "config.yaml").write_text("data: [1\n")
    return ["eval", str(run), "--split", "val", "--quiet"]


def predict_out_is_file(run: Path, data: Path) -> list[str]:
    return _predict(run, data, _file(run.parent / "out.png"))


def predict_bad_image(run: Path, data: Path) -> list[str]:
    images = run.parent / "imgs"
    shutil.copytree(data / "test" / "images", images)
    truncate(first(images))
    return ["predict", str(run), str(images), "--out", str(run.parent / "p"), "--quiet"]


def predict_args(*extra: str):
    def mutate(run: Path, data: Path) -> list[str]:
        return [*_predict(run, data), *extra]

    return mutate


def predict_missing_image(run: Path, data: Path) -> list[str]:
    return ["predict", str(run), str(run.parent / "nope.png"), "--out", str(run.parent / "p")]


def predict_bad_list(run: Path, data: Path) -> list[str]:
    listing = run.parent / "list.txt"
    listing.write_text(f"{first(data / 'test' / 'images')}\n{run.parent / 'missing.png'}\n")
    args = ["predict", str(run), "--files", str(listing), "--root", "/"]  # absolute entries
    return [*args, "--out", str(run.parent / "p"), "--quiet"]


def onnx_damaged(run: Path, data: Path) -> list[str]:
    model = _file(run.parent / "model.onnx")
    return ["predict", str(model), str(data / "test" / "images"), "--out", str(run.parent / "p")]


def export_to_folder(run: Path, data: Path) -> list[str]:
    (run.parent / "folder.onnx").mkdir()
    return ["export", str(run), "--out", str(run.parent / "folder.onnx")]


def export_existing(run: Path, data: Path) -> list[str]:
    return ["export", str(run), "--out", str(_file(run.parent / "m.onnx"))]


def report_missing_run(run: Path, data: Path) -> list[str]:
    return ["report", str(run.parent / "nope")]


def name_taken(run: Path, data: Path) -> list[str]:
    return train_args(data, run.parent, out_dir=run.parent, name="run")


RUN_CASES = [
    Case("weights file truncated", "run folder", run_case(corrupt_weights)),
    Case("weights of another model", "run folder", run_case(other_model_weights)),
    Case("sidecar lacks 'model'", "run folder", run_case(sidecar_missing_key("model"))),
    Case("sidecar lacks 'classes'", "run folder", run_case(sidecar_missing_key("classes"))),
    Case("sidecar not JSON", "run folder", run_case(sidecar_not_json)),
    Case("best.json missing", "run folder", run_case(no_best)),
    Case("optimizer file truncated (--resume)", "run folder", run_case(truncated_optimizer)),
    Case("metrics.jsonl torn (--resume works)", "run folder", run_case(torn_metrics), 0),
    Case("config.yaml deleted (eval)", "run folder", run_case(config_deleted("eval"))),
    Case("config.yaml deleted (--resume)", "run folder", run_case(config_deleted("resume"))),
    Case("config.yaml damaged (eval)", "run folder", run_case(config_damaged)),
    Case("run name taken", "run folder", run_case(name_taken)),
    Case("predict --out is a file", "predict", run_case(predict_out_is_file)),
    Case("predict: one truncated image", "predict", run_case(predict_bad_image)),
    Case("predict: image missing", "predict", run_case(predict_missing_image)),
    Case("predict --files: a missing entry", "predict", run_case(predict_bad_list)),
    Case("predict --tta-scales abc", "predict", run_case(predict_args("--tta-scales", "abc"))),
    Case("predict --window 0x5", "predict", run_case(predict_args("--window", "0x5"))),
    Case("predict --num-parts 0", "predict", run_case(predict_args("--num-parts", "0"))),
    Case(
        "predict --part-id 3 of 2",
        "predict",
        run_case(predict_args("--num-parts", "2", "--part-id", "3")),
    ),
    Case("predict --batch-size 0", "predict", run_case(predict_args("--batch-size", "0"))),
    Case("predict a damaged .onnx", "predict", run_case(onnx_damaged)),
    Case("export --out is a folder", "export", run_case(export_to_folder)),
    Case("export --out exists", "export", run_case(export_existing)),
    Case(
        "export --size 0x0",
        "export",
        run_case(lambda run, data: ["export", str(run), "--size", "0x0"]),
    ),
    Case("report of a missing run", "report", run_case(report_missing_run)),
    Case(
        "robustness of a missing run",
        "report",
        run_case(lambda run, data: ["robustness", str(run.parent / "nope"), "--quiet"]),
    ),
    Case(
        "summary of an unknown model",
        "report",
        run_case(lambda run, data: ["summary", "--model", "nope"]),
    ),
]

ALL = DATA_CASES + CONFIG_CASES + RUN_CASES


def run_one(case: Case) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        argv = case.setup(tmp)
        err, out = io.StringIO(), io.StringIO()
        crashed = None
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                code = main(argv)
        except SystemExit as e:  # argparse refusals
            code = e.code if isinstance(e.code, int) else 2
        except BaseException:
            code, crashed = None, traceback.format_exc()
        stderr = err.getvalue()
        errors = [line for line in stderr.splitlines() if line.startswith("pixelseg: error:")]
        usage = any(line.startswith("usage:") for line in stderr.splitlines())
        problems = []
        if crashed:
            problems.append("traceback: " + crashed.strip().splitlines()[-1])
        if code != case.expect:
            problems.append(f"exit {code}, expected {case.expect}")
        if case.expect == 2 and len(errors) != 1 and not (usage and code == 2):
            problems.append(f"{len(errors)} 'pixelseg: error:' lines")
        if "Traceback" in stderr:
            problems.append("traceback on stderr")
        if case.group in ("data", "config", "folders") and argv[0] == "train" and code:
            runs = tmp / "runs"
            if runs.is_dir() and any(runs.iterdir()):
                problems.append("a refused train left a run folder")
        if list(tmp.rglob("*.tmp")):
            problems.append("temporary files left behind")
        message = errors[0][len("pixelseg: error: ") :] if errors else stderr.strip()[-200:]
        return {
            "case": case.name,
            "group": case.group,
            "exit": code,
            "message": message,
            "ok": not problems,
            "problems": problems,
        }


def main_bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated groups")
    ap.add_argument("--verbose", action="store_true", help="print every message")
    ap.add_argument("--out", default="bench/results/bad_inputs.json")
    args = ap.parse_args()
    groups = set(args.only.split(",")) if args.only else None
    rows = []
    for case in ALL:
        if groups and case.group not in groups:
            continue
        row = run_one(case)
        rows.append(row)
        mark = "ok  " if row["ok"] else "FAIL"
        if args.verbose or not row["ok"]:
            print(
                f"{mark} [{row['group']}] {row['case']}: exit {row['exit']}: "
                f"{row['message'][:150]}" + (f"  <- {row['problems']}" if row["problems"] else "")
            )
    ok = sum(r["ok"] for r in rows)
    print(f"\n{ok} of {len(rows)} bad inputs handled cleanly")
    for g in sorted({r["group"] for r in rows}):
        sub = [r for r in rows if r["group"] == g]
        print(f"  {g:11s} {sum(r['ok'] for r in sub)}/{len(sub)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    sys.exit(0 if ok == len(rows) else 1)


if __name__ == "__main__":
    main_bench()
