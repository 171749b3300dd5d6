"""Hashing: the sha256 of a file, and a hasher that follows a download's completed prefix.

The hasher reads back what the workers wrote (``os.pread`` into one reused buffer) as soon as the
contiguous prefix of the file grows, so the digest is mostly done when the last byte lands.
hashlib releases the GIL while it hashes a large block, so it runs beside the receiving threads.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from hanzo_cli.download.policy import MiB
from hanzo_cli.download.state import O_BINARY
from hanzo_cli.fsutil import start_writeback

#: Block size of the hasher's reads, and how often it looks for a new one (seconds). Large blocks
#: because the hasher needs the GIL back after every block while the workers keep taking it (each
#: wait can last the 5 ms switch interval); 4 MiB is ~15 ms of hashing per wait.
HASH_BLOCK = 4 * MiB
HASH_POLL = 0.01


def hash_file(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of the file at ``path``."""
    h = hashlib.sha256()
    total = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(HASH_BLOCK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
            total += n
    return total, h.hexdigest()


def pread_into(fd: int, buf: memoryview, pos: int) -> int:
    """Read into a reused buffer: a fresh bytes object per block costs a malloc and page faults."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buf], pos)
    os.lseek(fd, pos, os.SEEK_SET)  # pragma: no cover - Windows
    data = os.read(fd, len(buf))  # pragma: no cover
    buf[: len(data)] = data  # pragma: no cover
    return len(data)  # pragma: no cover


class PrefixHasher:
    """Hashes ``path`` from byte 0 up to ``frontier()`` as it grows, until ``finished`` is set
    (after which the frontier is final) or ``cancel`` is set. ``wake`` shortens the wait for the
    next block. The digest covers resumed bytes too: nothing on disk is trusted unhashed."""

    def __init__(
        self,
        path: Path,
        frontier: Callable[[], int],
        *,
        finished: threading.Event,
        cancel: threading.Event,
        wake: threading.Event,
    ) -> None:
        self.path = path
        self.frontier = frontier
        self.finished = finished
        self.cancel = cancel
        self.wake = wake
        self.hashed = 0
        self.digest: str | None = None  # set once the whole file is hashed

    def run(self) -> None:
        h = hashlib.sha256()
        view = memoryview(bytearray(HASH_BLOCK))
        fd = os.open(self.path, os.O_RDONLY | O_BINARY)
        try:
            while not self.cancel.is_set():
                done = self.finished.is_set()  # read before the frontier: then it is final
                available = self.frontier() - self.hashed
                # Whole blocks only, until the end: waking for every network chunk would cost
                # more CPU in thread switches than the copies it saves.
                if available >= HASH_BLOCK or (done and available > 0):
                    n = pread_into(fd, view[: min(HASH_BLOCK, available)], self.hashed)
                    if n <= 0:
                        raise OSError(f"{self.path} is shorter than its state says")
                    h.update(view[:n])
                    # Hashed bytes are final: start writing them out now, so the fsync before
                    # the rename does not find the whole file dirty.
                    start_writeback(fd, self.hashed, n)
                    self.hashed += n
                    continue
                if done:
                    self.digest = h.hexdigest()
                    return
                self.wake.wait(HASH_POLL)
                self.wake.clear()
        finally:
            os.close(fd)
