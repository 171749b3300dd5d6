"""Output helpers: JSON on stdout, messages and progress bars on stderr.

Progress bars are drawn only when stderr is a terminal, unless ``HANZO_PROGRESS=1`` forces them
(``HANZO_PROGRESS=0`` or ``--quiet`` turns them off). tqdm is imported only when a bar is drawn,
so commands that show no progress never pay for it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, Protocol

import click

from hanzo_cli.constants import ENV_PROGRESS
from hanzo_cli.units import human_size as human_size  # re-exported: commands format sizes from here

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence progress bars and informational messages (errors still print)."""
    global _quiet
    _quiet = quiet


def progress_enabled() -> bool:
    forced = (os.environ.get(ENV_PROGRESS) or "").strip().lower()
    if _quiet or forced in ("0", "false", "no", "off"):
        return False
    if forced in ("1", "true", "yes", "on"):
        return True
    return sys.stderr.isatty()


def info(message: str) -> None:
    """A human-readable status line on stderr (not shown with --quiet)."""
    if not _quiet:
        click.echo(message, err=True)


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


def echo_json(data: Any) -> None:
    """Print ``data`` as the only JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))


class ProgressBar(Protocol):
    """What the downloader and providers report progress to."""

    def update(self, n: int) -> None: ...

    def set_total(self, total: int | None) -> None: ...

    def set_completed(self, completed: int) -> None: ...

    def close(self) -> None: ...


class NullBar:
    """A bar that draws nothing (quiet mode, no TTY)."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.completed = 0

    def update(self, n: int) -> None:
        self.completed += n

    def set_total(self, total: int | None) -> None:
        self.total = total

    def set_completed(self, completed: int) -> None:
        self.completed = completed

    def close(self) -> None:
        pass


class TqdmBar:
    """A tqdm byte bar (size, rate, ETA) on stderr; safe to update from several threads."""

    def __init__(self, desc: str, total: int | None, position: int | None = None) -> None:
        from tqdm.auto import tqdm  # heavy import, only when a bar is drawn

        self._lock = threading.Lock()
        self._bar = tqdm(
            desc=desc,
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            dynamic_ncols=True,
            position=position,
            leave=True,
            mininterval=0.2,
        )

    def update(self, n: int) -> None:
        with self._lock:
            self._bar.update(n)

    def set_total(self, total: int | None) -> None:
        with self._lock:
            self._bar.total = total
            self._bar.refresh()

    def set_completed(self, completed: int) -> None:
        with self._lock:
            self._bar.update(completed - self._bar.n)

    def close(self) -> None:
        with self._lock:
            self._bar.close()


def progress_bar(desc: str, total: int | None = None) -> ProgressBar:
    """A byte progress bar on stderr, or a silent one when progress is off."""
    if progress_enabled():
        return TqdmBar(desc, total)
    return NullBar()


class ProgressGroup:
    """One bar per key (e.g. per layer digest), created on first use and closed together.

    Providers that relay a server's progress stream (Ollama's NDJSON pull) use this instead of
    drawing bars themselves.
    """

    def __init__(self) -> None:
        self._bars: dict[str, ProgressBar] = {}

    def bar(self, key: str, desc: str, total: int | None = None) -> ProgressBar:
        if key not in self._bars:
            self._bars[key] = progress_bar(desc, total)
        elif total is not None:
            self._bars[key].set_total(total)
        return self._bars[key]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def __enter__(self) -> ProgressGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
