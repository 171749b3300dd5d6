"""Units for people: byte counts as short text (messages of layers that draw no output)."""

from __future__ import annotations


def human_size(n: int | float | None) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units, as disks and network rates are sold)."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
