"""ONNX export: every model exports and matches PyTorch; the file alone segments an image."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import pixelseg
from pixelseg.cli.main import main
from pixelseg.data.imageio import list_images, read_image
from pixelseg.deploy import onnx_export
from pixelseg.deploy.onnx_export import export_onnx
from pixelseg.errors import PixelsegError

from .conftest import KNOBS

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(KNOBS))
def test_every_model_exports_with_parity(key, trained_run, deploy_scenes, tmp_path):
    run = trained_run(key)
    result = export_onnx(run, tmp_path / "m.onnx")
    assert result.input_size is None  # every registered model exports with dynamic sizes
    assert len(result.parity) == 2 and len({p.size for p in result.parity}) == 2
    assert all(p.max_abs_diff <= 1e-4 and p.agreement >= 0.999 for p in result.parity)

    onnx_pred, torch_pred = pixelseg.load(tmp_path / "m.onnx"), pixelseg.load(run)
    meta = onnx_pred.meta
    assert meta["model"]["name"] == key.split("-")[0]
    assert meta["classes"] == json.loads((run / "checkpoints" / "best.json").read_text())["classes"]
    assert meta["normalization_in_graph"] and meta["exporter"] == result.exporter
    if "lite0" in key:  # the encoder's own normalisation, and where its weights came from
        assert meta["normalization"]["std"][0] * 255 == pytest.approx(128)
        assert meta["pretrained"]["encoder"] == "efficientnet_lite0"
    # An image of another size than either parity check: same probabilities, same classes.
    image = read_image(list_images(deploy_scenes / "test" / "images")[0])[:31, :37]
    a, b = onnx_pred.predict_proba(image), torch_pred.predict_proba(image)
    assert a.shape == b.shape == (len(meta["classes"]["names"]), 31, 37)
    assert np.abs(a - b).max() < 1e-4
    assert (a.argmax(0) == b.argmax(0)).mean() >= 0.999


def test_parity_failure_fails_and_writes_nothing(trained_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(onnx_export, "MAX_ABS_DIFF", -1.0)  # nothing can pass
    out = tmp_path / "out" / "m.onnx"
    assert main(["export", str(trained_run("unet")), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "parity failed" in err and "max |logit diff|" in err and "nothing was written" in err
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_existing_output_is_not_overwritten_silently(trained_run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    out.write_text("keep me")
    assert main(["export", str(trained_run("unet")), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main(["export", str(trained_run("unet")), "--out", str(out), "--overwrite"]) == 0
    assert out.stat().st_size > 1000


def test_fixed_size_export_resizes_to_its_size_and_back(trained_run, deploy_scenes, tmp_path):
    run = trained_run("lightseg", "data.resize=[24,32]")
    original = onnx_export._strategies
    try:
        onnx_export._strategies = lambda family, knobs: ["dynamo-fixed"]
        result = export_onnx(run, tmp_path / "fixed.onnx")
    finally:
        onnx_export._strategies = original
    assert result.input_size == (24, 32)  # the training resize
    assert [p.size for p in result.parity] == [(24, 32), (24, 32)]
    onnx_pred, torch_pred = pixelseg.load(tmp_path / "fixed.onnx"), pixelseg.load(run)
    assert onnx_pred.meta["input_size"] == [24, 32]
    image = read_image(list_images(deploy_scenes / "test" / "images")[1])  # 32x40
    a, b = onnx_pred.predict_proba(image), torch_pred.predict_proba(image)
    assert a.shape[1:] == (32, 40) and np.abs(a - b).max() < 1e-4


def test_predict_with_onnx_writes_the_same_masks(trained_run, deploy_scenes, tmp_path):
    run = trained_run("unet")
    model = tmp_path / "model.onnx"
    assert main(["export", str(run), "--out", str(model)]) == 0
    images = str(deploy_scenes / "test" / "images")
    assert main(["predict", str(run), images, "--out", str(tmp_path / "pt"), "--quiet"]) == 0
    assert main(["predict", str(model), images, "--out", str(tmp_path / "ox"), "--quiet"]) == 0
    masks = sorted((tmp_path / "pt").glob("*_mask.png"))
    assert len(masks) == 6
    for m in masks:
        a = np.asarray(Image.open(m))
        b = np.asarray(Image.open(tmp_path / "ox" / m.name))
        assert (a == b).mean() >= 0.999


def test_onnx_file_alone_segments_an_image_without_torch(trained_run, deploy_scenes, tmp_path):
    """The docs example (docs/deploy.md), run with torch made unimportable."""
    model = tmp_path / "model.onnx"
    export_onnx(trained_run("unet"), model)
    image = list_images(deploy_scenes / "test" / "images")[0]
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import json
        import numpy as np
        import onnxruntime as ort
        from PIL import Image

        session = ort.InferenceSession({str(model)!r}, providers=["CPUExecutionProvider"])
        meta = json.loads(session.get_modelmeta().custom_metadata_map["pixelseg"])
        rgb = np.asarray(Image.open({str(image)!r}).convert("RGB"), dtype=np.float32)
        logits = session.run(None, {{"image": rgb.transpose(2, 0, 1)[None]}})[0]
        class_map = logits[0].argmax(0).astype(np.uint8)
        palette = [v for c in meta["classes"]["colours"] for v in c]
        mask = Image.fromarray(class_map, mode="P")
        mask.putpalette(palette)
        mask.save({str(tmp_path / "mask.png")!r})
        print(meta["classes"]["names"][int(np.bincount(class_map.ravel()).argmax())])
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ref = pixelseg.load(model).predict(read_image(image))
    assert (np.asarray(Image.open(tmp_path / "mask.png")) == ref).mean() >= 0.999


def test_export_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def tiny_onnx(path, meta: dict | None, classes: int = 2) -> None:
    """A real ONNX segmentation graph (a 1x1 convolution: image -> logits) without torch,
    carrying ``meta`` as its pixelseg metadata, or none."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(classes, 3, 1, 1)).astype(np.float32), "w"
    )
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes, "H", "W"])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "pixelseg", json.dumps(meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


GOOD_META = {
    "model": {"name": "tiny", "knobs": {}},
    "classes": {"names": ["bg", "fg"], "colours": [[0, 0, 0], [255, 0, 0]]},
    "input_size": None,
    "resize": None,
    "epoch": 1,
}


def test_onnx_file_without_metadata_is_refused(tmp_path):
    tiny_onnx(tmp_path / "plain.onnx", None)  # a valid ONNX model, just not pixelseg's
    with pytest.raises(PixelsegError, match="plain.onnx: ONNX file has no pixelseg metadata"):
        pixelseg.load(tmp_path / "plain.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(PixelsegError, match="bad.onnx: not a loadable ONNX model"):
        pixelseg.load(tmp_path / "bad.onnx")


@pytest.mark.parametrize(
    "key, value",
    [
        ("input_size", "abc"),
        ("input_size", [0, -3]),
        ("input_size", [24]),
        ("resize", [1e9, 2]),
        ("resize", [100_000, 100_000]),
        ("classes", {"names": "ab"}),
        ("classes", {"names": ["bg", "fg", "extra"]}),  # the graph outputs 2
        ("classes", {"names": ["bg", "fg"], "colours": [[0, 0, 0], [300, 0, 0]]}),
        ("model", {"knobs": {}}),
        ("normalization", [1, 2]),
        ("epoch", "seven"),
    ],
)
def test_malformed_onnx_metadata_is_one_line_naming_the_file_and_key(tmp_path, key, value):
    tiny_onnx(tmp_path / "m.onnx", {**GOOD_META, key: value})
    with pytest.raises(PixelsegError) as e:
        pixelseg.load(tmp_path / "m.onnx").predict(np.zeros((8, 8, 3), np.uint8))
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'm.onnx'}: damaged pixelseg metadata: {key}")
    assert "\n" not in message


def test_well_formed_metadata_of_a_foreign_graph_loads(tmp_path):
    tiny_onnx(tmp_path / "m.onnx", {**GOOD_META, "input_size": [8, 10]})
    predictor = pixelseg.load(tmp_path / "m.onnx")
    assert predictor.predict(np.zeros((12, 9, 3), np.uint8)).shape == (12, 9)
    # It says what runs it, whatever the file is called.
    info = predictor.info()
    assert predictor.backend == info.backend == "onnx" and info.runtime == "onnxruntime"
    assert info.source == "m.onnx" and info.input_size == (8, 10)
    (tmp_path / "m.onnx").rename(tmp_path / "M.ONNX")
    assert pixelseg.load(tmp_path / "M.ONNX").info().runtime == "onnxruntime"
