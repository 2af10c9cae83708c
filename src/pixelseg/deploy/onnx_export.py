"""Export a trained run to ONNX, with its preprocessing inside and everything else recorded.

The exported graph takes ``image``: float32 (N, 3, H, W), RGB pixel values 0-255, and returns
``logits``: float32 (N, C, H, W). Normalisation is folded into the graph, so a user needs only
the file to segment an image (see docs/deploy.md). The file's metadata (key ``pixelseg``, JSON)
holds the model name and knobs, the classes and colours, the normalisation, the training
resize, the input size when the graph is fixed to one, the exporter and the parity figures.

How each model exports (the first strategy that passes the parity check wins):
- CNNs (``unet``, ``deeplab``, ``lightseg``): torch's default exporter (``torch.export``) with
  dynamic batch, height and width.
- RNNs (``renet``, ``reseg``, and ``unet context=renet``): ``torch.export`` cannot export the
  batched GRU/LSTM sweeps with dynamic sizes, so they go through the TorchScript exporter, which
  records the sweeps' reshapes as shape arithmetic and keeps batch, height and width dynamic.
  Its deprecation warning is expected and silenced. Where that exporter is gone (a later
  torch) or fails, the model is exported at one fixed size, recorded in the metadata; the
  predictor then resizes every image to it and the prediction back.

The parity check always runs: onnxruntime against PyTorch on generated images at two sizes (or,
for a fixed-size graph, two images at its size). Worse than ``MAX_ABS_DIFF`` or
``MIN_AGREEMENT`` fails the export, and nothing is left at the output path.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import RunConfig
from ..data.transforms import Normalizer
from ..engine.checkpoint import load_checkpoint
from ..engine.sidecar import Sidecar
from ..errors import PixelsegError
from ..models import get_entry
from ..runs import RunFolder

METADATA_KEY = "pixelseg"
FORMAT_VERSION = 1
MAX_ABS_DIFF = 1e-4  # logits
MIN_AGREEMENT = 0.999  # share of pixels whose argmax class agrees
OPSET = 18


class WithPreprocessing(nn.Module):
    """(N, 3, H, W) RGB 0-255 -> the model's logits, with training's normalisation inside."""

    def __init__(self, model: nn.Module, normalizer: Normalizer) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(normalizer.mean).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(normalizer.std).view(1, -1, 1, 1) * 255)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model((image - self.mean) / self.std)  # (N, C, H, W)


@dataclass
class ParityResult:
    size: tuple[int, int]
    batch: int
    max_abs_diff: float
    agreement: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= MAX_ABS_DIFF and self.agreement >= MIN_AGREEMENT

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"  {self.batch} x {self.size[0]}x{self.size[1]}: max |logit diff| "
            f"{self.max_abs_diff:.2e} (limit {MAX_ABS_DIFF:.0e}), class agreement "
            f"{self.agreement:.4%} (limit {MIN_AGREEMENT:.1%})  {verdict}"
        )


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "dynamo", "torchscript" or "dynamo-fixed"
    input_size: tuple[int, int] | None  # None: dynamic height and width
    parity: list[ParityResult] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)  # strategies tried before, and why not

    def summary(self) -> str:
        sizes = "dynamic batch, height and width"
        if self.input_size:
            sizes = f"fixed size {self.input_size[0]}x{self.input_size[1]}, dynamic batch"
        lines = [f"exported {self.path} ({self.exporter} exporter, {sizes})", "parity:"]
        return "\n".join(lines + [p.line() for p in self.parity])


def _sample_images(size: tuple[int, int], batch: int, seed: int) -> torch.Tensor:
    """Smooth random RGB images (0-255): closer to photos than white noise, whose near-tied
    logits would make the class-agreement figure meaningless."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, max(2, size[0] // 8), max(2, size[1] // 8), generator=g)
    img = nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)
    img = img + 0.05 * torch.rand(batch, 3, *size, generator=g)
    return (img.clamp(0, 1) * 255).round()


def _quiet():
    """Silence the exporters' progress lines and expected warnings (the TorchScript exporter's
    deprecation notice, torch.export's missing-torchvision notes)."""
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx", "onnxscript"):
        logger = logging.getLogger(name)
        stack.callback(logger.setLevel, logger.level)
        logger.setLevel(logging.ERROR)
    return stack


def _export(wrapped: nn.Module, sample: torch.Tensor, path: Path, strategy: str) -> None:
    names = {"input_names": ["image"], "output_names": ["logits"]}
    with _quiet(), torch.no_grad():
        if strategy == "torchscript":
            axes = {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(
                wrapped,
                (sample,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                dynamic_axes={"image": axes, "logits": axes},
                **names,
            )
            return
        dim = torch.export.Dim
        shapes = {0: dim("batch", min=1, max=1024)}
        if strategy == "dynamo":
            shapes.update({2: dim("height", min=8, max=16384), 3: dim("width", min=8, max=16384)})
        program = torch.onnx.export(
            wrapped,
            (sample,),
            dynamo=True,
            opset_version=OPSET,
            dynamic_shapes={"image": shapes},
            verbose=False,
            **names,
        )
        program.save(str(path))


def _strategies(family: str, knobs: dict) -> list[str]:
    recurrent = family == "rnn" or knobs.get("context") == "renet"
    return ["torchscript", "dynamo-fixed"] if recurrent else ["dynamo", "torchscript"]


def check_parity(
    wrapped: nn.Module, onnx_path: Path, sizes: list[tuple[int, int]], batches: list[int]
) -> list[ParityResult]:
    """Compare onnxruntime with PyTorch on generated images, one result per (size, batch)."""
    from .onnx_backend import new_session

    session = new_session(onnx_path)
    results = []
    for k, (size, batch) in enumerate(zip(sizes, batches)):
        x = _sample_images(size, batch, seed=k)
        with torch.no_grad():
            ref = wrapped(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        if got.shape != ref.shape:
            results.append(ParityResult(size, batch, float("inf"), 0.0))
            continue
        agree = float((got.argmax(1) == ref.argmax(1)).mean())
        results.append(ParityResult(size, batch, float(np.abs(got - ref).max()), agree))
    return results


def _write_metadata(path: Path, meta: dict) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    # The plain keys other tools display (Netron, onnxruntime's model metadata).
    for key in ("classes", "model"):
        extra = proto.metadata_props.add()
        extra.key, extra.value = key, json.dumps(meta[key])
    proto.doc_string = "pixelseg segmentation model: input RGB 0-255 NCHW float32, output logits"
    onnx.save(proto, str(path))


def default_size(meta: Sidecar, run_config: RunConfig | None) -> tuple[int, int] | None:
    """The size a run was trained at, when it had one: its resize, else its crop."""
    if meta.resize:
        return tuple(meta.resize)
    crop = run_config.data.crop_size if run_config is not None else None
    return tuple(crop) if crop else None


def _odd_size(size: tuple[int, int]) -> tuple[int, int]:
    """A second parity size that is neither the first nor a friendly multiple of 2."""
    h, w = size
    return (h + 13 if h % 2 == 0 else h + 12), (w + 7 if w % 2 == 0 else w + 6)


def export_onnx(
    run: str | Path,
    out: str | Path | None = None,
    size: tuple[int, int] | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Export a run's best checkpoint (or a checkpoint ``.json``) to ONNX and check parity.

    >>> result = export_onnx("runs/demo")           # doctest: +SKIP
    >>> print(result.summary())                     # doctest: +SKIP
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise PixelsegError(
            f"export needs onnx, onnxruntime and onnxscript ({e.name} is missing): "
            'pip install "pixelseg[export]"'
        ) from None
    model, meta = load_checkpoint(run)
    model.eval()
    run_dir = RunFolder.containing(meta.path)
    out = Path(out) if out else run_dir.onnx
    if out.is_dir():
        raise PixelsegError(f"{out}: is a folder; give the .onnx file to write")
    if out.exists() and not overwrite:
        raise PixelsegError(f"{out}: exists; choose another --out or pass --overwrite")
    run_config = run_dir.config() if run_dir.has_config() else None
    spec = meta.model
    entry = get_entry(spec["name"])
    normalizer = Normalizer(**(meta.normalization or {}))
    wrapped = WithPreprocessing(model, normalizer).eval()
    trained = default_size(meta, run_config)
    base = tuple(size) if size else (trained or (256, 256))

    out.parent.mkdir(parents=True, exist_ok=True)
    attempts: list[str] = []
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        for strategy in _strategies(entry.family, spec["knobs"]):
            fixed = strategy == "dynamo-fixed"
            if fixed and not (size or trained):
                attempts.append(
                    f"{strategy}: needs a size (the run has no training resize or crop): "
                    "pass --size HxW"
                )
                continue
            try:
                _export(wrapped, _sample_images(base, 2, seed=0), tmp, strategy)
            except Exception as e:  # exporter failures come in many types
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                attempts.append(f"{strategy}: export failed ({first[:200]})")
                continue
            sizes = [base, base] if fixed else [base, _odd_size(base)]
            parity = check_parity(wrapped, tmp, sizes, [2, 1])
            if all(p.passed for p in parity):
                input_size = tuple(base) if fixed else None
                info = {
                    "format_version": FORMAT_VERSION,
                    "model": spec,
                    "classes": meta.classes,
                    "normalization": normalizer.to_dict(),
                    "normalization_in_graph": True,
                    "pretrained": meta.pretrained,  # the encoder's starting weights, if any
                    "input": "image: float32 (N, 3, H, W), RGB 0-255",
                    "output": "logits: float32 (N, C, H, W)",
                    "resize": list(meta.resize) if meta.resize else None,
                    "input_size": list(input_size) if input_size else None,
                    "exporter": strategy,
                    "source": str(meta.path),
                    "epoch": meta.epoch,
                    "parity": [asdict(p) for p in parity],
                }
                _write_metadata(tmp, info)
                os.chmod(tmp, 0o666 & ~_umask())
                os.replace(tmp, out)
                return ExportResult(out, strategy, input_size, parity, attempts)
            worst = max(parity, key=lambda p: p.max_abs_diff)
            attempts.append(
                f"{strategy}: parity failed at {worst.batch} x {worst.size[0]}x{worst.size[1]}: "
                f"max |logit diff| {worst.max_abs_diff:.2e} > {MAX_ABS_DIFF:.0e} or class "
                f"agreement {worst.agreement:.4%} < {MIN_AGREEMENT:.1%}"
            )
    finally:
        tmp.unlink(missing_ok=True)
    raise PixelsegError(
        f"{meta.path}: no exporter produced a model that passes the parity check "
        f"({'; '.join(attempts)}); nothing was written"
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
