"""Argument helpers shared by the command modules."""

from __future__ import annotations

from ..errors import PixelsegError

# Flags that name one configuration key, flag -> key, in the order their overrides are listed.
CONFIG_FLAGS: dict[str, str] = {
    "data": "data.root",
    "format": "data.format",
    "model": "model.name",
    "name": "name",
    "out_dir": "out_dir",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "budget_minutes": "train.time_budget_minutes",
    "seed": "train.seed",
    "device": "train.device",
}


def add_inference_arguments(p) -> None:
    """--tta, --tta-scales and --window: the inference options eval and predict share."""
    p.add_argument("--tta", action="store_true", help="test-time augmentation: horizontal flip")
    p.add_argument(
        "--tta-scales",
        metavar="S,S,...",
        help="also average predictions at these input scales, e.g. 0.75,1,1.25",
    )
    p.add_argument("--window", help="sliding-window inference with this HxW window")


def inference_options(args) -> dict:
    """The parsed inference arguments as keyword arguments (tta, scales, window)."""
    scales = (1.0,)
    if args.tta_scales:
        try:
            scales = tuple(float(s) for s in args.tta_scales.split(","))
        except ValueError:
            scales = ()
        if not scales or min(scales) <= 0:
            raise PixelsegError(
                f"--tta-scales {args.tta_scales}: expected positive numbers, e.g. 0.75,1,1.25"
            )
    window = parse_size(args.window, "--window") if args.window else None
    return {"tta": args.tta, "scales": scales, "window": window}


def parse_size(text: str, what: str = "--size") -> tuple[int, int]:
    """'360x480' (or '360*480') -> (360, 480) (height x width); '128' -> (128, 128)."""
    try:
        parts = [int(p) for p in text.lower().replace("*", "x").split("x")]
    except ValueError:
        raise PixelsegError(f"{what} {text}: expected HxW, e.g. 360x480") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise PixelsegError(f"{what} {text}: expected HxW with positive sizes, e.g. 360x480")
    return parts[0], parts[1]
