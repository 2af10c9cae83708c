"""What ``pixelseg serve`` answers: the JSON bodies of ``POST /predict`` and ``GET /model``,
and of every refusal (``{"error": "..."}``, raised anywhere as an ``ApiError``)."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ObjectInfo(BaseModel):
    id: int
    class_id: int
    class_name: str
    area: int
    bbox: list[int]
    centroid: list[float]
    confidence: float | None


class Prediction(BaseModel):
    width: int
    height: int
    class_pixels: dict[str, int]
    class_share: dict[str, float]
    objects: list[ObjectInfo] | None = None
    mask_png: str | None = None  # base64 palette PNG of class ids
    overlay_png: str | None = None  # base64 RGB PNG
    uncertainty_png: str | None = None  # base64 RGB PNG (entropy, magma colour map)
    seconds: float


class ModelInfo(BaseModel):
    model: str
    knobs: dict
    classes: list[str]
    colours: list[list[int]]
    input_size: list[int] | None  # the size images are resized to, if any (H, W)
    backend: str  # "torch" or "onnxruntime"
    source: str


class ErrorBody(BaseModel):
    error: str


ERRORS = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "not an image, empty or truncated",
        408: "the upload did not arrive in time",
        413: "over the byte, pixel or memory limit",
        415: "not a multipart upload",
        422: "a bad parameter",
        503: "busy: retry later (or the model thread has stopped)",
        504: "not answered within the compute deadline",
    }.items()
}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
