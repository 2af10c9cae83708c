"""The Python API offers what every command does: each command module calls a function that
``pixelseg`` exports, the very object (so the CLI tests exercise the API's functions)."""

import ast
import importlib
from pathlib import Path

import pytest

import pixelseg

# command module -> the public functions its run() calls
COMMANDS = {
    "train": ["train_and_report"],
    "eval": ["evaluate_run", "save_eval"],
    "robustness": ["robustness"],
    "report": ["build_run_report"],
    "predict": ["predict_images"],
    "export": ["export_onnx"],
    "check_data": ["check_dataset"],
    "convert": ["convert_dataset"],
    "rank": ["rank_images", "rank_labels"],
    "plan": ["plan_training"],
    "tune": ["run_study", "TuneOptions"],
    "demo": ["demo"],
    "serve": ["serve"],
    "models": ["list_models"],
    "summary": ["create_model", "summarize"],
}


def called_names(module) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    return {c.func.id for c in calls if isinstance(c.func, ast.Name)}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_calls_the_public_api(command):
    module = importlib.import_module(f"pixelseg.cli.{command}")
    called = called_names(module)
    for name in COMMANDS[command]:
        assert name in pixelseg.__all__, f"pixelseg.{name} is not exported"
        assert name in called, f"pixelseg {command} does not call {name}"
        imported = getattr(module, name, None)
        if imported is not None:  # imported at the top of the module: the same object
            assert imported is getattr(pixelseg, name)


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    """The demo on tiny settings: 16 scenes of 32x32, one epoch of a narrow U-Net."""
    return pixelseg.demo(
        tmp_path_factory.mktemp("demo"),
        epochs=1,
        size=(32, 32),
        train_images=16,
        overrides=["model.width=4", "model.depth=2", "train.max_steps_per_epoch=2"],
        progress=False,
        log=lambda _: None,
    )


def test_demo_trains_evaluates_and_predicts(demo_result):
    r = demo_result
    assert r.data.name == "data-32x32-16" and (r.data / "classes.yaml").is_file()
    assert (r.run_dir / "config.yaml").is_file() and r.report.is_file()
    assert r.eval_path.is_file() and 0.0 <= r.metrics.result.scores.mean_iou <= 1.0
    assert r.predicted == 8 and len(list(r.predictions.glob("*_mask.png"))) == 8
    assert (r.predictions / "predictions.json").is_file()
    assert f"val mIoU {r.metrics.result.scores.mean_iou:.4f}" in r.summary()
    # Where the time went: every phase, in order, adding up to the whole.
    assert list(r.phases) == ["scenes", "set-up", "training", "evaluation + report", "predictions"]
    assert min(r.phases.values()) >= 0 and sum(r.phases.values()) == pytest.approx(
        r.seconds, abs=0.5
    )
    assert "training" in r.summary().splitlines()[1]


def test_serve_runs_uvicorn_on_the_app_of_the_model(demo_result, monkeypatch):
    """One process: the app of the loaded model with the given limits; several: each worker
    builds it from the environment (``app_from_env``), the limits included."""
    uvicorn = pytest.importorskip("uvicorn")
    from fastapi.testclient import TestClient

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    limits = pixelseg.ServeLimits(max_bytes=1000)
    pixelseg.serve(demo_result.run_dir, port=8123, limits=limits, log=lambda _: None)
    app, kw = calls.pop()
    assert kw["port"] == 8123 and kw["host"] == "127.0.0.1"
    with TestClient(app) as c:
        assert c.get("/model").json()["model"] == "unet"
        r = c.post("/predict", files={"image": ("x.png", b"x" * 5000, "image/png")})
        assert r.status_code == 413 and "1,000 bytes" in r.json()["error"]

    from pixelseg.deploy.serve import app_from_env, worker_environment

    for key in worker_environment(demo_result.run_dir, limits):  # serve sets them: undo after
        monkeypatch.delenv(key, raising=False)
    pixelseg.serve(demo_result.run_dir, workers=2, limits=limits, log=lambda _: None)
    app, kw = calls.pop()
    assert app == "pixelseg.deploy.serve:app_from_env" and kw["workers"] == 2
    assert kw["factory"]
    with TestClient(app_from_env()) as c:
        assert c.get("/model").json()["model"] == "unet"
        r = c.post("/predict", files={"image": ("x.png", b"x" * 5000, "image/png")})
        assert r.status_code == 413


def test_serve_refuses_no_workers(demo_result):
    with pytest.raises(pixelseg.PixelsegError, match="--workers must be at least 1"):
        pixelseg.serve(demo_result.run_dir, workers=0, log=lambda _: None)
