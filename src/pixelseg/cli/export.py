"""pixelseg export: a run's best checkpoint as an ONNX file, checked against PyTorch."""

from __future__ import annotations

import argparse

from ..errors import PixelsegError
from ._common import parse_size

COMMAND = "export"
HELP = "export a run to ONNX (preprocessing inside, metadata, parity check against PyTorch)"
ORDER = 35


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (or a checkpoint .json)")
    p.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    p.add_argument("--out", help="file to write (default RUN/export/model.onnx)")
    p.add_argument(
        "--size",
        help="HxW of the sample input and the first parity check; the size a fixed-size "
        "export is fixed to (default: the training resize or crop, else 256x256)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args: argparse.Namespace) -> int:
    from ..deploy.onnx_export import export_onnx  # onnx is an optional extra

    if args.format != "onnx":  # pragma: no cover (argparse's choices already refuse it)
        raise PixelsegError(f"--format {args.format}: only onnx is supported")
    size = parse_size(args.size) if args.size else None
    result = export_onnx(args.run, args.out, size=size, overwrite=args.overwrite)
    for note in result.attempts:
        print(f"  tried {note}")
    print(result.summary())
    return 0
