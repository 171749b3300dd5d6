"""Trusting files another tool (or an older hanzo) left in a shared cache only after checking them.

A blob found in place under the right name may still hold the wrong bytes: an interrupted download
another tool "resumed" without hashing, bit rot, a file edited by hand. :func:`verify_existing`
checks such a file before a provider links or loads it: its size always, its content digest (the
sha256 the source declares, or a git object id for files kept in git) once. The outcome is
remembered in a small record under hanzo's cache folder, keyed by the file's identity (device,
inode, size, mtime_ns), so a file that changes in any of these is hashed again while an unchanged
multi-GB blob is not re-read on every pull.

A file that fails is not deleted: :func:`set_aside` renames it into a folder the caller chooses
(outside the names the cache's owner reads) and says so in one line, and the caller fetches it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from hanzo_cli.fsutil import atomic_write

__all__ = ["file_digests", "is_remembered", "record_verified", "remember", "set_aside", "verify_existing"]

_HEX_RE = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
_RECORD_VERSION = 1


def _records_dir() -> Path:
    from hanzo_cli.constants import cache_dir

    return cache_dir() / "verified"


def _identity(st: os.stat_result) -> dict[str, int]:
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _record_path(path: Path) -> Path:
    key = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:32]
    return _records_dir() / f"{key}.json"


def file_digests(path: Path) -> tuple[str, str]:
    """(sha256, git object id) of a file's content, in one read."""
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha256.update(chunk)
            git.update(chunk)
    return sha256.hexdigest(), git.hexdigest()


def verify_existing(
    path: Path, sha256: str | None = None, size: int | None = None, *, git_blob_id: str | None = None
) -> bool:
    """Whether ``path`` exists and holds what was expected: ``size`` bytes (when given), content
    with this ``sha256`` or git object id (when given). A file this process or an earlier one
    already verified with the same digest, and that has not changed since, is not read again.

    Symlinks are followed (a cache link is checked through its blob)."""
    expected = _expected(sha256, git_blob_id)
    try:
        st = path.stat()
    except OSError:
        return False
    if size is not None and st.st_size != size:
        return False
    if expected is None:
        return True
    record = _record_path(path)
    identity = _identity(st)
    try:
        known = json.loads(record.read_text())
        if known.get("version") == _RECORD_VERSION and known.get("identity") == identity:
            if expected in known.get("digests", []):
                return True
    except (OSError, ValueError, AttributeError):
        pass
    sha, git = file_digests(path)
    try:
        after = _identity(path.stat())
    except OSError:
        return False
    if after != identity:  # written to while we read it: no verdict to remember
        return expected in (sha, git)
    if expected not in (sha, git):
        record.unlink(missing_ok=True)
        return False
    try:
        data = {"version": _RECORD_VERSION, "path": os.path.abspath(path), "identity": identity}
        atomic_write(record, json.dumps({**data, "digests": [sha, git]}).encode())
    except OSError:
        pass  # an unwritable cache folder only costs hashing again next time
    return True


def _expected(sha256: str | None, git_blob_id: str | None) -> str | None:
    value = sha256 if sha256 is not None else git_blob_id
    if value is None:
        return None
    value = value.strip().lower().removeprefix("sha256:").removeprefix("sha256-")
    if not _HEX_RE.fullmatch(value):
        raise ValueError(f"not a hex digest: {value[:80]!r}")
    return value


def set_aside(path: Path, folder: Path, why: str) -> Path:
    """Move a file that failed verification into ``folder`` (same file system: a rename) under a
    name that keeps the original and the time, and say so in one line. Returns the new path."""
    from hanzo_cli.output import warn

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
    os.replace(path, target)
    _record_path(path).unlink(missing_ok=True)
    warn(f"{path} {why}; moved it to {target} and fetching it again")
    return target


def record_verified(path: Path, *digests: str) -> None:
    """Remember that ``path`` was just verified to hold content with these digests (by a download
    that hashed it before renaming it into place), so :func:`verify_existing` need not read it."""
    known = [d for d in (_expected(d, None) for d in digests) if d]
    try:
        data = {"version": _RECORD_VERSION, "path": os.path.abspath(path), "identity": _identity(path.stat())}
        atomic_write(_record_path(path), json.dumps({**data, "digests": known}).encode())
    except OSError:
        pass


def remember(path: Path, tag: str) -> None:
    """Note that ``path``, as it is now, passed the check named ``tag`` (a preflight, say)."""
    record = _tagged_record(path, tag)
    try:
        data = {"version": _RECORD_VERSION, "path": os.path.abspath(path), "tag": tag}
        atomic_write(record, json.dumps({**data, "identity": _identity(path.stat())}).encode())
    except OSError:
        pass


def is_remembered(path: Path, tag: str) -> bool:
    """Whether ``path`` passed the check ``tag`` and has not changed since (see :func:`remember`)."""
    record = _tagged_record(path, tag)
    try:
        known = json.loads(record.read_text())
        return bool(known.get("tag") == tag and known.get("identity") == _identity(path.stat()))
    except (OSError, ValueError, AttributeError):
        return False


def _tagged_record(path: Path, tag: str) -> Path:
    return _records_dir() / f"{_record_path(path).stem}-{hashlib.sha256(tag.encode()).hexdigest()[:8]}.json"
