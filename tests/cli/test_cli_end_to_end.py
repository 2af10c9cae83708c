"""Train a few steps on generated scenes, evaluate, predict, resume; and every bad input
gets one line naming the file or key, exit code 2, and no run folder."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import pixelseg
from pixelseg.cli.main import main
from pixelseg.data.scenes import write_scenes
from pixelseg.engine.sidecar import data_file, read_sidecar

TINY = [
    "model.width=4",
    "model.depth=2",
    "train.batch_size=4",
    "train.max_steps_per_epoch=2",
    "augment.rotation=5",
]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    write_scenes(root, {"train": 8, "val": 4, "test": 2}, size=(32, 40), progress=False)
    return root


def train(args, tmp_path):
    return main(["train", "--quiet", "--out-dir", str(tmp_path / "runs"), *args, *TINY])


def test_train_eval_predict_resume(scenes, tmp_path, capsys):
    assert train(["--data", str(scenes), "--name", "r1", "--epochs", "2"], tmp_path) == 0
    run = tmp_path / "runs" / "r1"
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {
        "train_loss",
        "train_pixel_accuracy",
        "val_loss",
        "val_pixel_accuracy",
        "val_miou",
    } <= set(rows[0])
    for name in ("best", "last"):
        sidecar = read_sidecar(run / "checkpoints" / f"{name}.json")
        assert data_file(sidecar, "weights").is_file() and sidecar.model["name"] == "unet"
    assert "model:" in (run / "config.yaml").read_text()
    out = capsys.readouterr().out
    assert "val_miou" in out and "best val mIoU" in out

    assert main(["eval", str(run), "--split", "val", "--quiet"]) == 0
    result = json.loads((run / "eval" / "val.json").read_text())
    assert {"pixel_accuracy", "mean_iou", "per_class", "confusion_matrix", "overfitting"} <= set(
        result
    )
    assert len(result["confusion_matrix"]) == 7
    assert "miou_gap" in result["overfitting"]

    preds = tmp_path / "preds"
    assert (
        main(["predict", str(run), str(scenes / "test" / "images"), "--out", str(preds), "--quiet"])
        == 0
    )
    mask = Image.open(preds / "scene_00000_mask.png")
    assert mask.mode == "P" and mask.size == (40, 32)  # palette PNG at the input's size
    assert Image.open(preds / "scene_00000_overlay.png").size == (40, 32)

    # Resume: continue to epoch 3 from the last checkpoint.
    assert main(["train", "--quiet", "--resume", str(run), "train.epochs=3"]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_eval_and_predict_with_tta_scales_and_window(scenes, tmp_path, capsys):
    assert train(["--data", str(scenes), "--name", "tta", "--epochs", "1"], tmp_path) == 0
    run = tmp_path / "runs" / "tta"
    opts = ["--tta", "--tta-scales", "0.75,1,1.25", "--window", "24x24", "--quiet"]
    assert main(["eval", str(run), "--split", "val", *opts]) == 0
    result = json.loads((run / "eval" / "val_tta.json").read_text())
    assert result["tta"] and result["tta_scales"] == [0.75, 1.0, 1.25]
    assert 0 <= result["mean_iou"] <= 1
    assert json.loads((run / "eval" / "val.json").read_text())["tta"] is False  # not overwritten
    preds = tmp_path / "preds"
    assert (
        main(["predict", str(run), str(scenes / "test" / "images"), "--out", str(preds), *opts])
        == 0
    )
    assert Image.open(preds / "scene_00000_mask.png").size == (40, 32)
    capsys.readouterr()
    assert main(["eval", str(run), "--tta-scales", "1,x", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--tta-scales 1,x: expected positive numbers" in err and len(err.splitlines()) == 1


def test_overfitting_gap_on_a_capped_sample_of_train(scenes, tmp_path):
    from pixelseg.analysis.evaluation import evaluate_run

    assert train(["--data", str(scenes), "--name", "gap", "--epochs", "1"], tmp_path) == 0
    run = tmp_path / "runs" / "gap"
    full = evaluate_run(run, scenes, "val", progress=False)
    capped = evaluate_run(run, scenes, "val", progress=False, gap_max_images=3)
    assert full.overfitting.train_images == 8 and capped.overfitting.train_images == 3
    # the evaluated split itself is never capped
    assert capped.result.scores.mean_iou == full.result.scores.mean_iou


def test_a_final_pass_says_its_val_scores_are_not_held_out(scenes, tmp_path, capsys):
    args = ["--data", str(scenes), "--name", "final", "--epochs", "1", "data.train_split=train+val"]
    assert train(args, tmp_path) == 0
    run = tmp_path / "runs" / "final"
    assert "includes the val split" in capsys.readouterr().out
    assert main(["eval", str(run), "--split", "val", "--quiet"]) == 0
    assert "trained on its val split" in capsys.readouterr().out
    assert main(["eval", str(run), "--split", "test", "--quiet"]) == 0
    assert "trained on" not in capsys.readouterr().out


def test_explicit_run_name_is_never_overwritten(scenes, tmp_path, capsys):
    assert train(["--data", str(scenes), "--name", "same", "--epochs", "1"], tmp_path) == 0
    before = (tmp_path / "runs" / "same" / "metrics.jsonl").read_text()
    assert train(["--data", str(scenes), "--name", "same", "--epochs", "1"], tmp_path) == 2
    assert "run folder exists" in capsys.readouterr().err
    assert (tmp_path / "runs" / "same" / "metrics.jsonl").read_text() == before


def broken_copy(scenes, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(scenes, root)
    return root


def corrupt_missing_mask(root):
    (root / "train" / "masks" / "scene_00001.png").unlink()
    return "scene_00001.png: image has no mask"


def corrupt_truncated_image(root):
    path = root / "train" / "images" / "scene_00002.png"
    path.write_bytes(path.read_bytes()[:100])
    return "scene_00002.png: unreadable or truncated image"


def corrupt_size_mismatch(root):
    Image.new("L", (10, 10)).save(root / "train" / "masks" / "scene_00003.png")
    return "scene_00003.png: mask is 10x10 but image"


def corrupt_label_value(root):
    path = root / "train" / "masks" / "scene_00004.png"
    m = np.array(Image.open(path))
    m[0, 0] = 42
    Image.fromarray(m.astype(np.uint8), mode="L").save(path)
    return "scene_00004.png: label values [42]"


def corrupt_missing_folder(root):
    shutil.rmtree(root)
    return "dataset folder not found"


@pytest.mark.parametrize(
    "corrupt",
    [
        corrupt_missing_mask,
        corrupt_truncated_image,
        corrupt_size_mismatch,
        corrupt_label_value,
        corrupt_missing_folder,
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(scenes, tmp_path, capsys, corrupt):
    root = broken_copy(scenes, tmp_path)
    expected = corrupt(root)
    code = train(["--data", str(root), "--epochs", "1"], tmp_path)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_unknown_config_key(scenes, tmp_path, capsys):
    assert train(["--data", str(scenes), "train.bogus=1"], tmp_path) == 2
    assert "train.bogus: unknown configuration key" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_skip_bad_trains_without_bad_samples_and_lists_them(scenes, tmp_path):
    root = broken_copy(scenes, tmp_path)
    corrupt_truncated_image(root)
    assert train(["--data", str(root), "--name", "s", "--epochs", "1", "--skip-bad"], tmp_path) == 0
    skipped = (tmp_path / "runs" / "s" / "skipped.txt").read_text()
    assert "scene_00002.png" in skipped


def test_summary_command(capsys):
    assert main(["summary", "--model", "unet", "--size", "37x53", "width=4", "depth=2"]) == 0
    # The train command's spelling of a knob works too.
    assert main(["summary", "--model", "unet", "--size", "37x53", "model.width=4"]) == 0
    out = capsys.readouterr().out
    assert "Conv2d" in out and "params" in out.lower()


def test_seed_variance(scenes, tmp_path, capsys):
    assert (
        train(["--data", str(scenes), "--name", "sv", "--epochs", "1", "--seeds", "2"], tmp_path)
        == 0
    )
    result = json.loads((tmp_path / "runs" / "sv-seeds.json").read_text())
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    assert set(result["summary"]["best_val_miou"]) >= {"mean", "std"}
    assert (tmp_path / "runs" / "sv-seed1" / "metrics.jsonl").is_file()


def test_robustness_instances_and_report(scenes, tmp_path, capsys):
    assert train(["--data", str(scenes), "--name", "rb", "--epochs", "1"], tmp_path) == 0
    run = tmp_path / "runs" / "rb"
    assert (run / "report.html").is_file() and (run / "model_summary.txt").is_file()
    # Training alone evaluates the best checkpoint, so the report has every evaluation section.
    assert "overfitting" in json.loads((run / "eval" / "val.json").read_text())
    html = (run / "report.html").read_text()
    assert all(f"<h2>{h}" in html for h in ("Evaluation (val)", "Calibration", "Boundary F1"))
    assert (
        main(
            [
                "robustness",
                str(run),
                "--max-images",
                "2",
                "--severities",
                "1,3",
                "--corruptions",
                "gaussian_noise,rotate",
                "--quiet",
            ]
        )
        == 0
    )
    rob = json.loads((run / "robustness" / "robustness.json").read_text())
    assert set(rob["corruptions"]) == {"gaussian_noise", "rotate"}
    assert "hflip" in json.loads((run / "robustness" / "consistency.json").read_text())["overall"]
    assert "data:image/png;base64" in (run / "report.html").read_text()
    # The Python API is the very function the command calls: the same numbers, the same files.
    api = pixelseg.robustness(
        run, corruptions=["gaussian_noise", "rotate"], severities=[1, 3], max_images=2,
        progress=False,
    )  # fmt: skip
    assert json.loads(json.dumps(api.result.to_dict())) == rob
    assert [p.name for p in api.files] == ["robustness.json", "consistency.json", "robustness.png"]
    assert api.report == run / "report.html"
    out = tmp_path / "inst"
    assert (
        main(
            [
                "predict",
                str(run),
                str(scenes / "test" / "images"),
                "--out",
                str(out),
                "--instances",
                "--min-area",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    objects = json.loads((out / "scene_00000_instances.json").read_text())
    assert all({"class_name", "area", "bbox", "confidence"} <= set(o) for o in objects)
    assert (out / "scene_00000_uncertainty.png").is_file()
