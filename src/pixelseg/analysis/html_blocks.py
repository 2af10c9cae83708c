"""The building blocks of the HTML report: its style sheet, images embedded as PNG data, tables,
and the number formats of its cells. Nothing here knows what a section says."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .figures import figure_png

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
img{max-width:100%} .note{color:#666;font-size:13px} .verdict{font-size:17px;font-weight:600}
.cards{display:flex;gap:1em;flex-wrap:wrap} .card{background:#f6f8fa;border-radius:6px;
padding:.6em 1em} .card b{display:block;font-size:22px}
figure{display:inline-block;margin:.4em;text-align:center} figcaption{font-size:13px}
pre{background:#f6f8fa;padding:1em;overflow-x:auto;font-size:12px}
"""


def embed_png(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def embed_figure(figure, alt: str) -> str:
    return embed_png(figure_png(figure), alt)


def array_png(array: np.ndarray, max_side: int = 320, min_height: int = 0) -> bytes:
    img = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    elif img.height < min_height:
        # Tiny images (thumbnails, tests) are enlarged with visible pixels, not smoothed.
        k = min(-(-min_height // img.height), max(1, max_side // max(img.size)))
        img = img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def percent(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{100 * float(v):.{digits}f}"


def ratio_text(v: float) -> str:
    return f"{v:.3f}" if math.isfinite(v) else "–"


def html_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    head = ""
    if header is not None:
        head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>{head}{body}</table>"


def as_dict(obj) -> dict | None:
    if obj is None:
        return None
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
