"""The Python API offers what every command does: each command module calls a function that
``pixelseg`` exports, the very object (so the CLI tests exercise the API's functions)."""

import ast
import importlib
from pathlib import Path

import pytest

import pixelseg

# command module -> the public functions its run() calls
COMMANDS = {
    "train": ["train", "resume", "train_seeds", "load_config"],
    "eval": ["evaluate_run", "save_eval"],
    "robustness": ["robustness"],
    "report": ["build_run_report"],
    "predict": ["load", "predict_stream"],
    "export": ["export_onnx"],
    "check_data": ["check_dataset"],
    "plan": ["plan_for_config", "load_config"],
    "tune": ["run_study", "TuneOptions"],
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
