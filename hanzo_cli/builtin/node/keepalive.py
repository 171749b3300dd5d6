"""Ollama's ``keep_alive`` values, in the standard library only (``node:start`` checks ``--keep-alive``)."""

from __future__ import annotations

import re
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_keep_alive(value: Any) -> float | None:
    """Seconds as a number, or a Go duration (``"5m"``, ``"1h30m"``, ``"0"``), as Ollama reads it.
    Negative means forever (None); 0 unloads the model after the request. ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
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
    raise ValueError(f"keep_alive {value!r} is not a number of seconds or a duration such as 5m")


def parse_cli_keep_alive(value: str) -> float | None:
    """A command line's keep-alive: seconds as a number, else a duration such as ``5m``."""
    try:
        return parse_keep_alive(float(value))
    except ValueError:
        return parse_keep_alive(value)
