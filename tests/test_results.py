"""The package's central results are typed, with one JSON form each: ``Scores``
(``ConfusionMatrix.compute``), ``EvalResult`` (``evaluate``), ``RunEval`` (``evaluate_run``,
``eval/<split>.json``) and the checkpoint ``Sidecar``; and ``evaluate``'s ``on_batch`` always
gets probabilities at the masks' size."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from pixelseg.analysis.evaluation import Overfitting, RunEval, format_eval
from pixelseg.analysis.stability import CalibrationAccumulator
from pixelseg.constants import IGNORE_INDEX
from pixelseg.data.transforms import Normalizer
from pixelseg.engine.checkpoint import write_sidecar
from pixelseg.engine.evaluate import EvalResult, evaluate
from pixelseg.engine.sidecar import DataFile, Sidecar, data_file, read_sidecar
from pixelseg.metrics import ConfusionMatrix, Scores

NUM_CLASSES = 3


def scores_with_absent_class() -> Scores:
    cm = ConfusionMatrix(4)  # class 3 is in neither map: its per-class values are None
    cm.update(torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, IGNORE_INDEX]))
    return cm.compute()


def test_scores_json_round_trip_keeps_todays_keys():
    scores = scores_with_absent_class()
    d = scores.to_dict()
    assert list(d) == [
        "pixel_accuracy",
        "mean_iou",
        "mean_f1",
        "mean_accuracy",
        "classes_averaged",
        "per_class",
        "confusion_matrix",
    ]
    assert list(d["per_class"]) == ["precision", "recall", "iou", "f1", "pixels"]
    assert d["per_class"]["iou"][3] is None and d["classes_averaged"] == [0, 1, 2]
    again = Scores.from_dict(json.loads(json.dumps(d)))
    assert again == scores and again.to_dict() == d


def test_eval_result_json_round_trip():
    result = EvalResult(scores_with_absent_class(), loss=0.25)
    d = result.to_dict()
    assert d == {**result.scores.to_dict(), "loss": 0.25}
    assert EvalResult.from_dict(json.loads(json.dumps(d))) == result
    assert EvalResult.from_dict({**d, "loss": None}).loss is None


def test_run_eval_json_round_trip_and_old_files():
    acc = CalibrationAccumulator()
    acc.update(
        torch.full((1, 2, 2, 2), 0.5).numpy(), torch.zeros(1, 2, 2, dtype=torch.int64).numpy()
    )
    result = RunEval(
        run="runs/r",
        checkpoint="runs/r/checkpoints/best.json",
        epoch=3,
        split="val",
        tta=False,
        tta_scales=[1.0],
        class_names=["a", "b", "c", "d"],
        resolution="labels",
        model_input_size=[24, 32],
        result=EvalResult(scores_with_absent_class(), loss=0.5),
        images=2,
        boundary={"tolerance": "2 px", "mean_f1": 0.5},
        calibration=acc.compute(),
        overfitting=Overfitting(4, 0.8, 0.6, 0.2, 0.1, 0.5, 0.4),
    )
    d = json.loads(json.dumps(result.to_dict()))
    assert list(d)[:9] == [
        "run",
        "checkpoint",
        "epoch",
        "split",
        "tta",
        "tta_scales",
        "class_names",
        "resolution",
        "model_input_size",
    ]
    assert list(d)[-5:] == ["loss", "images", "boundary", "calibration", "overfitting"]
    again = RunEval.from_dict(d)
    assert again.to_dict() == d
    assert "mean IoU" in format_eval(again)
    # An eval file from before the resolution was recorded (and without the gap) still reads.
    old = {k: v for k, v in d.items() if k not in ("resolution", "model_input_size", "overfitting")}
    back = RunEval.from_dict(old)
    assert back.resolution is None and back.overfitting is None and back.to_dict() == old


class PixelLinear(nn.Module):
    """A 1x1 convolution: logits of the input's size, far from probabilities."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, NUM_CLASSES, 1)
        nn.init.normal_(self.conv.weight, std=5.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("model_size", [None, (12, 10)])
def test_on_batch_gets_probabilities_at_the_masks_size(tta, model_size):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 16, 20), dtype=torch.uint8, generator=g)
    masks = torch.randint(0, NUM_CLASSES, (2, 16, 20), generator=g)
    seen = []

    def on_batch(probs, pred, m):
        seen.append((probs, pred, m))

    result = evaluate(
        PixelLinear(),
        [(images, masks)],
        Normalizer(),
        NUM_CLASSES,
        torch.device("cpu"),
        nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX),
        tta=tta,
        on_batch=on_batch,
        reduce_across_processes=False,
        model_size=model_size,
    )
    assert isinstance(result, EvalResult)
    assert (result.loss is None) == tta  # no loss under test-time augmentation
    assert sum(len(m) for _, _, m in seen) == 2
    for probs, pred, m in seen:
        assert probs.shape == (len(m), NUM_CLASSES, 16, 20) and pred.shape == m.shape
        assert (probs >= 0).all()
        torch.testing.assert_close(probs.sum(1), torch.ones_like(probs[:, 0]))
        assert torch.equal(pred, probs.argmax(1))


# A sidecar as pixelseg before 0.2 wrote it: no ``files`` (the data file is TAG.safetensors
# beside it), no commit, no lr_scale or planned_epochs; and a key this version does not know.
OLD_SIDECAR = {
    "model": {"name": "tiny", "num_classes": 3, "in_channels": 3, "knobs": {}},
    "epoch": 2,
    "best_miou": 0.5,
    "best_epoch": 2,
    "classes": {"names": ["a", "b", "c"], "colours": [[0, 0, 0], [1, 1, 1], [2, 2, 2]]},
    "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    "resize": None,
    "metrics": {"val_miou": 0.5},
    "from_the_future": {"kept": True},
}


def test_sidecar_json_round_trip_and_an_old_sidecar(tmp_path):
    path = tmp_path / "checkpoints" / "best.json"
    path.parent.mkdir()
    path.write_text(json.dumps(OLD_SIDECAR, indent=1))
    sidecar = read_sidecar(path, ("classes",))
    assert sidecar.path == path and sidecar.epoch == 2 and sidecar.files is None
    assert sidecar.resize is None and sidecar.lr_scale is None and sidecar.commit is None
    assert sidecar.extra == {"from_the_future": {"kept": True}}
    # The JSON form is the file as it was: same keys, same order, null kept, nothing added.
    assert json.dumps(sidecar.to_dict(), indent=1) == path.read_text()
    assert Sidecar.from_dict(sidecar.to_dict(), path) == sidecar
    assert data_file(sidecar) == path.with_suffix(".safetensors")
    assert data_file(sidecar, "optimizer") == path.with_suffix(".optim.safetensors")


def test_a_new_sidecar_round_trips_with_its_file_records(tmp_path):
    record = {"file": "best-e0002-abcdef.safetensors", "bytes": 10, "sha256": "0" * 64}
    d = {**OLD_SIDECAR, "lr_scale": 1.0, "files": {"weights": record}}
    sidecar = Sidecar.from_dict(json.loads(json.dumps(d)), tmp_path / "best.json")
    assert sidecar.files["weights"] == DataFile(**record)
    assert data_file(sidecar) == tmp_path / record["file"]
    assert sidecar.to_dict() == d and list(sidecar.to_dict()) == list(d)
    write_sidecar(tmp_path, "copy", sidecar)
    assert json.loads((tmp_path / "copy.json").read_text()) == d
