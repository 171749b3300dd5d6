"""The resumable state of a download: the part plan, the partial file and its state file.

State file format (version 1), ``<partial>.json``::

    {"version": 1, "size": 1234, "sha256": "<hex>|null", "parts": [[start, end, done], ...]}

``start``/``end`` are byte offsets (end exclusive), ``done`` counts the bytes of the part written
from ``start``. It holds no URL on purpose: registry and CDN links expire or change between runs,
while the bytes they name do not. It is written atomically (temp + rename) and never claims bytes
that were not written first.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from hanzo_cli.download.policy import MiB

#: Files at least this large are split into ranged parts fetched in parallel.
MULTIPART_THRESHOLD = 16 * MiB
#: Smallest part: a 256 MiB file has 64, enough for 16 connections four times over, so the last
#: wave of parts (whose connections finish at different times) is short behind a CDN edge. Parts are handed
#: out in file order, so the completed prefix (which the hasher follows) trails the download by
#: about ``connections`` parts. Larger files get larger parts (see plan_parts) so that a 50 GB blob
#: needs at most MAX_PARTS requests (plus the splits of work stealing at the end).
MIN_PART_SIZE = 4 * MiB
MAX_PARTS = 256
#: The state is saved whenever this many bytes (or 1% of the file, if more) arrived since the last
#: save, so that a kill -9 loses at most about 1% of the file.
SAVE_MIN_BYTES = 512 * 1024
STATE_VERSION = 1

# Windows has no os.pwrite/os.pread and opens files in text mode unless told otherwise. Every
# thread has a descriptor of its own, so seek + write is as safe there as pwrite here.
O_BINARY: int = getattr(os, "O_BINARY", 0)


class Part:
    """A byte range [start, end) of the file and how much of it is on disk."""

    __slots__ = ("done", "end", "start")

    def __init__(self, start: int, end: int | None, done: int = 0) -> None:
        self.start = start
        self.end = end  # None while the size is unknown (no Content-Length)
        self.done = done

    @property
    def pos(self) -> int:
        return self.start + self.done

    @property
    def complete(self) -> bool:
        return self.end is not None and self.pos >= self.end

    def remaining(self) -> int:
        return 0 if self.end is None else max(0, self.end - self.pos)


def plan_parts(size: int | None, connections: int, ranges: bool) -> list[Part]:
    """Split a file of ``size`` bytes into the parts to fetch (one without ranges or size)."""
    if size is None:
        return [Part(0, None)]
    if not ranges or connections <= 1 or size < MULTIPART_THRESHOLD:
        return [Part(0, size)]
    part_size = max(MIN_PART_SIZE, -(-size // MAX_PARTS))
    part_size = -(-part_size // MiB) * MiB  # whole MiB: page- and block-aligned writes
    return [Part(start, min(start + part_size, size)) for start in range(0, size, part_size)]


def save_interval(size: int | None) -> int:
    """Bytes between two state saves: 1% of the file, at least SAVE_MIN_BYTES."""
    return SAVE_MIN_BYTES if size is None else max(SAVE_MIN_BYTES, size // 100)


def state_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def load_state(partial: Path, size: int | None, sha256: str | None) -> list[Part] | None:
    """The parts of a compatible earlier attempt, or None to start afresh."""
    try:
        data = json.loads(state_path(partial).read_text())
        partial_size = partial.stat().st_size
    except (OSError, ValueError):
        return None
    try:
        if data.get("version") != STATE_VERSION or data.get("size") != size:
            return None
        old_sha = data.get("sha256")
        if old_sha is not None and sha256 is not None and old_sha != sha256:
            return None  # the state of another file that used the same partial path
        parts = [Part(int(s), int(e), int(d)) for s, e, d in data["parts"]]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    # The parts must tile [0, size), and the partial must be as long as the file.
    expect = 0
    for p in parts:
        assert p.end is not None
        if p.start != expect or p.end < p.start or not 0 <= p.done <= p.end - p.start:
            return None
        expect = p.end
    if expect != size or partial_size != size or not parts:
        return None
    return parts


def state_text(size: int | None, sha256: str | None, parts: Sequence[Part]) -> str:
    return json.dumps(
        {
            "version": STATE_VERSION,
            "size": size,
            "sha256": sha256,
            "parts": [[p.start, p.end, p.done] for p in parts],
        }
    )


def write_state(partial: Path, text: str) -> None:
    """Replace the state file atomically (temp + rename).

    Not fsynced: the threat is a killed process, and the page cache outlives it. After a power
    loss the state may claim bytes that never reached the disk; the sha256 check catches that
    (without a sha256 such a file could be wrong, one more reason providers pass digests).
    """
    path = state_path(partial)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def create_partial(partial: Path, size: int | None) -> None:
    """Start a fresh partial, preallocated (sparse) to the size when known."""
    fd = os.open(partial, os.O_RDWR | os.O_CREAT | O_BINARY, 0o644)
    try:
        os.ftruncate(fd, 0)  # drop stale content from an unusable earlier attempt
        if size:
            os.ftruncate(fd, size)
    finally:
        os.close(fd)


def discard_partial(partial: Path) -> None:
    """Remove the partial and its state (what they hold is worth nothing)."""
    for path in (state_path(partial), partial):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
