"""File-system helpers every layer uses: atomic writes and directory fsyncs."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half."""
    import tempfile  # not at module top: the entry-point cache's reader pays for nothing it does not use

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of dirty pages in the range, no waiting


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` of ``fd`` to disk, without
    waiting (Linux's sync_file_range; elsewhere nothing). A download that fsyncs its file before
    the rename then finds most pages already clean: with gigabytes of RAM the kernel would
    otherwise leave every page dirty until that fsync, which then costs a quarter of a fast
    download. Best effort: errors are the fsync's to report."""
    sync_file_range = _sync_file_range()
    if sync_file_range is not None:
        sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only here: a few milliseconds, paid by downloads alone

    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def mtime(path: Path) -> datetime:
    """A file's modification time, timezone-aware (UTC)."""
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


def remove_unless_locked(paths: list[Path], lock_path: Path) -> bool:
    """Delete ``paths`` while holding ``lock_path`` (the lock a writer of those files holds), without
    waiting: False, and nothing deleted, when a writer holds it now (a download that started or
    resumed since the caller looked keeps its files)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        for path in paths:
            path.unlink(missing_ok=True)
    finally:
        lock.release()
    return True


def lock_is_held(lock_path: Path) -> bool:
    """Whether another process holds the file lock ``lock_path`` now (a missing lock file is free,
    and is not created by asking)."""
    from filelock import FileLock, Timeout

    if not lock_path.exists():
        return False
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False
