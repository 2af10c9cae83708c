"""Matplotlib helpers shared by the analysis plots: build figures without pyplot, save atomically.

Figures are created with ``matplotlib.figure.Figure`` directly rather than through pyplot, so no
global backend is switched and nothing leaks between calls (pyplot keeps every figure alive
until closed). ``Figure.savefig`` renders through the Agg canvas, so this works headless.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from ..files import atomic_write_bytes


def new_figure(width: float = 6.4, height: float = 4.0) -> Figure:
    """A figure of ``width`` x ``height`` inches with a constrained layout."""
    return Figure(figsize=(width, height), layout="constrained")


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure as PNG to ``path`` through a temporary file (never a half-written plot)."""
    path = Path(path)
    atomic_write_bytes(path, figure_png(fig, dpi=dpi))
    return path
