"""Reading and checking request bodies: every problem is an :class:`APIError` (a 4xx answer)."""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request


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


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_keep_alive(value: Any) -> float | None:
    """Ollama's ``keep_alive``: seconds as a number, or a Go duration (``"5m"``, ``"1h30m"``, ``"0"``).
    Negative means forever (None); 0 unloads the model after the request."""
    if isinstance(value, bool):
        raise APIError(400, "keep_alive must be a number of seconds or a duration such as 5m", "keep_alive")
    if isinstance(value, int | float):
        return None if value < 0 else float(value)
    if isinstance(value, str):
        text = value.strip()
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        if body == "0":
            return 0.0
        position, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(body):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            position = match.end()
        if body and position == len(body):
            return None if sign < 0 else seconds
    raise APIError(
        400, f"keep_alive {value!r} is not a number of seconds or a duration such as 5m", "keep_alive"
    )


def float32_base64(vector: Sequence[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
