"""The study runner (``workflows/tune.py``, on the decisions of ``tuning/``): outputs, resuming,
the trial budget shared by parallel workers, pruning, per-trial time limits, failures, and
optuna staying optional."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from pixelseg.cli.main import main  # noqa: E402
from pixelseg.config import load_config  # noqa: E402
from pixelseg.errors import PixelsegError  # noqa: E402
from pixelseg.tuning import require_optuna  # noqa: E402
from pixelseg.tuning.options import TuneOptions  # noqa: E402
from pixelseg.tuning.optuna_setup import pruning_warmup  # noqa: E402
from pixelseg.tuning.space import load_space  # noqa: E402
from pixelseg.workflows.tune import run_study  # noqa: E402

# Defined here, not imported from conftest: "from conftest import" gets whichever of the
# suite's conftest modules was imported first (tests/engine's trains 1 epoch with GroupNorm).
# Base overrides that make a trial take a fraction of a second.
TINY = ["train.max_steps_per_epoch=2", "train.threads=1", "data.num_workers=0"]


def options(scenes, tmp_path, space, **kw) -> TuneOptions:
    base = dict(
        data=str(scenes),
        trials=3,
        out=str(tmp_path / "tune"),
        study="s",
        space=load_space(space),
        epochs_per_trial=1,
        overrides=list(TINY),
    )
    return TuneOptions(**{**base, **kw})


def read_rows(study_dir: Path) -> list[dict]:
    with open(study_dir / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_study_writes_outputs_and_resumes(scenes, tmp_path, tiny_space, capsys):
    opts = options(scenes, tmp_path, tiny_space, trials=3)
    summary = run_study(opts, log=lambda *a: None)
    out = opts.study_dir
    assert summary.counts == {"COMPLETE": 3}
    for name in (
        "study.db",
        "trials.csv",
        "best.yaml",
        "history.png",
        "importances.png",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    rows = read_rows(out)
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert {"state", "value", "duration_s", "train.lr", "family"} <= set(rows[0]) or {
        "state",
        "value",
        "duration_s",
        "train.lr",
        "cnn_model",
    } <= set(rows[0])
    for n in range(3):  # every trial is a normal run folder
        assert (out / "trials" / f"trial-{n}" / "config.yaml").is_file()
        assert (out / "trials" / f"trial-{n}" / "metrics.jsonl").is_file()

    # best.yaml is accepted as is, keeps data.root, and restores the base's epochs.
    best = load_config(out / "best.yaml")
    assert best.data.root == str(scenes)
    assert best.train.epochs == 30 and best.name == "" and best.out_dir == "runs"
    assert best.train.max_steps_per_epoch == 2
    assert best.model.name in ("unet", "lightseg") and best.model.knobs["width"] == 4

    # Resume: the same study with a larger budget runs only the missing trials.
    summary = run_study(options(scenes, tmp_path, tiny_space, trials=4), log=lambda *a: None)
    assert summary.counts == {"COMPLETE": 4}
    assert len(read_rows(out)) == 4


def test_two_workers_share_one_sqlite_study(scenes, tmp_path, tiny_space):
    """Two processes, one study of 6 trials: none lost, none run twice."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [
        sys.executable,
        "-m",
        "pixelseg",
        "tune",
        "--data",
        str(scenes),
        "--trials",
        "6",
        "--epochs-per-trial",
        "1",
        "--out",
        str(tmp_path / "tune"),
        "--study",
        "shared",
        "--space",
        str(tiny_space),
        "--pruner",
        "none",
        *TINY,
    ]
    workers = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out[-3000:]
    study = optuna.load_study(
        study_name="shared", storage=f"sqlite:///{tmp_path / 'tune' / 'shared' / 'study.db'}"
    )
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(trials) == 6 and sorted(numbers) == list(range(6))
    assert sum(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in trials) == 6
    assert all(t.state.name == "COMPLETE" for t in trials), [t.user_attrs for t in trials]
    folders = sorted(p.name for p in (tmp_path / "tune" / "shared" / "trials").iterdir())
    assert folders == [f"trial-{n}" for n in range(6)]
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == 6
    # Each trial ran in exactly one worker, and lines for 6 trials were printed in all.
    printed = [
        line.split()[1] for out in outputs for line in out.splitlines() if line.startswith("trial ")
    ]
    assert sorted(printed, key=int) == [str(n) for n in range(6)]


def fake_train(values_by_lr):
    """A stand-in for the trainer: reports a val mIoU per epoch that depends on the lr."""

    def train(cfg, progress=True, log=print, on_epoch=None):
        base = values_by_lr(cfg.train.lr)
        best = -1.0
        for epoch in range(1, cfg.train.epochs + 1):
            value = base * epoch / cfg.train.epochs
            best = max(best, value)
            on_epoch({"epoch": epoch, "val_miou": value})
        Path(cfg.out_dir, cfg.name).mkdir(parents=True)

        class Result:
            best_miou = best

        return Result()

    return train


def test_bad_trials_are_pruned(scenes, tmp_path, tiny_space, monkeypatch):
    import pixelseg.engine.trainer as trainer

    monkeypatch.setattr(
        trainer, "train", fake_train(lambda lr: 1.0 / (1.0 + abs(__import__("math").log10(lr) + 3)))
    )
    for pruner in ("median", "halving"):
        opts = options(
            scenes, tmp_path, tiny_space, trials=8, epochs_per_trial=3, pruner=pruner, study=pruner
        )
        summary = run_study(opts, log=lambda *a: None)
        assert summary.counts.get("PRUNED", 0) >= 1, (pruner, summary.counts)
        assert sum(summary.counts.values()) == 8
        pruned = [r for r in read_rows(opts.study_dir) if r["state"] == "PRUNED"]
        assert all(r["note"].startswith("pruned after epoch") for r in pruned)
        # Never inside the warm-up: after one epoch every model from scratch looks alike.
        assert all(int(r["note"].split()[3].strip(":,")) > pruning_warmup(3) for r in pruned)


@pytest.mark.parametrize("epochs,warmup", [(1, 1), (3, 1), (4, 1), (8, 2), (30, 10)])
def test_pruning_warmup_is_a_third_of_the_epochs(epochs, warmup):
    assert pruning_warmup(epochs) == warmup


def test_first_trial_is_the_base_configuration(scenes, tmp_path, tiny_space, monkeypatch):
    import pixelseg.engine.trainer as trainer

    monkeypatch.setattr(trainer, "train", fake_train(lambda lr: 0.5))
    base = ["model.name=lightseg", "model.width=4", "train.batch_size=2"]
    opts = options(scenes, tmp_path, tiny_space, trials=2, overrides=[*TINY, *base])
    run_study(opts, log=lambda *a: None)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{opts.study_dir / 'study.db'}")
    first = study.get_trials()[0].user_attrs["overrides"]
    assert {"model.name=lightseg", "model.width=4", "train.batch_size=2"} <= set(first)
    # Resuming the study does not add it again.
    run_study(options(scenes, tmp_path, tiny_space, trials=3, overrides=[*TINY, *base]))
    trials = study.get_trials()
    assert len(trials) == 3 and ["fixed_params" in t.system_attrs for t in trials] == [
        True,
        False,
        False,
    ]


def test_minutes_per_trial_stop_a_trial_with_its_best_value(
    scenes, tmp_path, tiny_space, monkeypatch
):
    import pixelseg.engine.trainer as trainer
    import pixelseg.workflows.tune as tune_mod

    monkeypatch.setattr(trainer, "train", fake_train(lambda lr: 0.5))
    clock = iter(range(0, 10_000, 100))  # every call: 100 s later
    monkeypatch.setattr(tune_mod.time, "time", lambda: next(clock))
    opts = options(
        scenes,
        tmp_path,
        tiny_space,
        trials=1,
        epochs_per_trial=5,
        minutes_per_trial=1.0,
        pruner="none",
    )
    summary = run_study(opts, log=lambda *a: None)
    assert summary.counts == {"COMPLETE": 1}
    (row,) = read_rows(opts.study_dir)
    assert row["note"].startswith("stopped after epoch 1") and row["epochs"] == "1"
    assert float(row["value"]) == pytest.approx(0.1)  # epoch 1 of 5: 0.5 * 1/5


def test_failing_trials_are_recorded_and_stop_the_study(scenes, tmp_path, tiny_space, monkeypatch):
    import pixelseg.engine.trainer as trainer

    def broken(cfg, **kw):
        raise RuntimeError("out of memory\nsecond line")

    monkeypatch.setattr(trainer, "train", broken)
    opts = options(scenes, tmp_path, tiny_space, trials=20)
    with pytest.raises(PixelsegError, match="5 trials in a row failed; the last: RuntimeError"):
        run_study(opts, log=lambda *a: None)
    rows = read_rows(opts.study_dir)  # written even though the study stopped
    assert len(rows) == 5 and all(r["state"] == "FAIL" for r in rows)
    assert rows[0]["note"] == "RuntimeError: out of memory"


def test_user_errors_come_before_any_trial(scenes, tmp_path, tiny_space):
    with pytest.raises(PixelsegError, match="dataset folder not found"):
        run_study(options(tmp_path / "nothing", tmp_path, tiny_space), log=lambda *a: None)
    with pytest.raises(PixelsegError, match="model.hidden_size: none of the candidate models"):
        run_study(
            options(scenes, tmp_path, tiny_space, overrides=["model.hidden_size=4"]),
            log=lambda *a: None,
        )
    with pytest.raises(PixelsegError, match="--trials: must be >= 1"):
        run_study(options(scenes, tmp_path, tiny_space, trials=0), log=lambda *a: None)
    with pytest.raises(PixelsegError, match="a study selects on val, so val cannot be trained"):
        run_study(
            options(scenes, tmp_path, tiny_space, overrides=["data.train_split=train+val"]),
            log=lambda *a: None,
        )
    assert not (tmp_path / "tune").exists()
    # Trial folders left from a study whose database was deleted are never overwritten.
    (tmp_path / "tune" / "s" / "trials" / "trial-0").mkdir(parents=True)
    with pytest.raises(PixelsegError, match="holds trial folders of another study"):
        run_study(options(scenes, tmp_path, tiny_space), log=lambda *a: None)


def test_cli_tune_prints_the_cost_first(scenes, tmp_path, tiny_space, capsys):
    code = main(
        [
            "tune",
            "--data",
            str(scenes),
            "--trials",
            "2",
            "--epochs-per-trial",
            "1",
            "--out",
            str(tmp_path / "t"),
            "--space",
            str(tiny_space),
            *TINY,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    budget = out.index("budget: 2 trial(s) to run x 1 epoch(s) = at most 2 epochs")
    assert "min on this machine" in out[budget:]
    assert budget < out.index("trial   0 COMPLETE")
    assert "best: trial" in out and (tmp_path / "t" / "study" / "best.yaml").is_file()


def test_cli_tune_local_space_keeps_the_base_model(scenes, tmp_path, monkeypatch, capsys):
    import pixelseg.engine.trainer as trainer

    monkeypatch.setattr(trainer, "train", fake_train(lambda lr: lr))
    base = ["model.name=lightseg", "model.width=4", "train.lr=1e-3"]
    out = tmp_path / "t"
    args = ["tune", "--data", str(scenes), "--trials", "3", "--out", str(out)]
    assert main([*args, "--space", "local", *TINY, *base]) == 0
    assert "cnn models: lightseg" in capsys.readouterr().out
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{out / 'study/study.db'}")
    assert len(study.trials) == 3
    for trial in study.trials:
        cfg = load_config(overrides=trial.user_attrs["overrides"])
        assert cfg.model.name == "lightseg" and cfg.model.knobs["width"] in (2, 4, 8)
        assert 1e-3 / 3 <= cfg.train.lr <= 3e-3


def test_missing_optuna_is_a_user_error(monkeypatch, scenes, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    with pytest.raises(PixelsegError, match=r'pip install "pixelseg\[tune\]"'):
        require_optuna()
    assert main(["tune", "--data", str(scenes), "--out", str(tmp_path)]) == 2
    assert 'pip install "pixelseg[tune]"' in capsys.readouterr().err


def test_import_pixelseg_does_not_import_optuna():
    code = (
        "import sys, pixelseg, pixelseg.tuning.plan, pixelseg.cli.main as m; "
        "m.build_parser(); assert 'optuna' not in sys.modules, 'optuna imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_timeout_starts_no_new_trial(scenes, tmp_path, tiny_space):
    opts = options(scenes, tmp_path, tiny_space, timeout=0)
    summary = run_study(opts, log=lambda *a: None)
    assert summary.counts == {} and summary.best_number is None
    assert read_rows(opts.study_dir) == []
    assert "no trial completed" in summary.notes[0]
