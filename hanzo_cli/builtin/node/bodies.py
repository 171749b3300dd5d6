"""Reading and checking request bodies: every problem is an :class:`APIError` (a 4xx answer)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

from hanzo_cli.builtin.node.keepalive import parse_keep_alive


class APIError(Exception):
    """An error answered with an HTTP status: ``{"error": message}`` on Ollama's routes, OpenAI's
    error object on ``/v1`` (``param`` names the field at fault, where there is one)."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


async def read_body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise APIError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object")
    return data


def texts_field(value: Any, field_name: str, limit: int) -> list[str]:
    """A string or a list of strings, at most ``limit`` of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if len(value) > limit:
            raise APIError(400, f"{field_name} has {len(value)} items; the limit is {limit}", field_name)
        return value
    raise APIError(400, f"{field_name} must be a string or a list of strings", field_name)


def documents_field(value: Any, limit: int) -> list[str]:
    """Rerank documents: strings, or Cohere's ``{"text": …}`` objects."""
    if isinstance(value, list):
        texts = [d.get("text") if isinstance(d, dict) else d for d in value]
        if all(isinstance(t, str) for t in texts):
            if len(texts) > limit:
                raise APIError(400, f"documents has {len(texts)} items; the limit is {limit}", "documents")
            return [str(t) for t in texts]
    raise APIError(400, "documents must be a list of strings", "documents")


def dimensions_field(data: dict[str, Any]) -> int | None:
    """``dimensions``: a positive integer; one at or above the model's size gives the whole vector."""
    value = data.get("dimensions")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise APIError(400, "dimensions must be a positive integer", "dimensions")
    return value


def truncate_field(data: dict[str, Any]) -> bool:
    value = data.get("truncate", True)
    if not isinstance(value, bool):
        raise APIError(400, "truncate must be true or false", "truncate")
    return value


def model_field(data: dict[str, Any]) -> str | None:
    value = data.get("model")
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise APIError(400, "model must be a string", "model")
    return value


def keep_alive_seconds(value: Any) -> float | None:
    """A request's ``keep_alive`` (see :func:`~.keepalive.parse_keep_alive`); 400 when malformed."""
    try:
        return parse_keep_alive(value)
    except ValueError as exc:
        raise APIError(400, str(exc), "keep_alive") from None


class VectorsResponse(JSONResponse):  # type: ignore[misc]  # starlette is untyped where it is absent
    """JSON written by orjson, for bodies that carry vectors: numpy arrays go in as they are and
    float32 values in their shortest form (``0.0123``, as Ollama's Go encoder writes float32), not as
    the float64 digits of the same value; several times faster than ``json.dumps`` of Python floats."""

    def render(self, content: Any) -> bytes:
        data: bytes = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        return data


def float32_base64(vector: Sequence[float]) -> str:
    """OpenAI's ``encoding_format: base64``: the little-endian float32 bytes."""
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
