"""File-system helpers every layer uses: atomic writes and directory fsyncs."""

from __future__ import annotations

import os
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
