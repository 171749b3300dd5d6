"""The one downloader of hanzo: resumable, parallel, verified HTTP downloads of large files.

Every provider (Ollama registry blobs, Hugging Face files, LM Studio) fetches through
:func:`download`. What it guarantees:

* ``dest`` only ever appears complete: bytes go to a partial file that is verified (size,
  sha256), fsynced and atomically renamed into place.
* A download interrupted in any way (Ctrl-C, kill -9, network failure, full disk) resumes where it
  stopped on the next call, from a small JSON state file next to the partial that never claims
  bytes that were not written (:mod:`.state`).
* With a known sha256, two processes pulling the same file download it once: they share
  ``<dest>.partial`` under a file lock (``<partial>.lock``), and the digest catches any mix-up.
  Without one, each process downloads into a partial of its own (``<partial>.private-HOST-PID``),
  removed when it ends: file locks are not reliable on every file system, and nothing could tell
  a spliced file from a good one.
* Memory stays flat whatever the size: bodies are streamed to disk chunk by chunk.

The package's rooms: :mod:`.policy` (what HTTP answers mean, retries, backoff, redirects),
:mod:`.state` (part plan, partial and state file), :mod:`.transfer` (the worker threads),
:mod:`.hashing` (the hasher following the completed prefix), :mod:`.engine` (probe, attempts,
verification, rename). Only :func:`download` here knows of the CLI's output: the engine reports to
the bar and the ``notify`` callback it is given.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hanzo_cli.download.result import DownloadResult, Notify

if TYPE_CHECKING:
    import httpx

    from hanzo_cli.output import ProgressBar

__all__ = ["PARTIAL_SUFFIXES", "DownloadResult", "download", "side_files"]

#: What a download writes beside its partial file: the partial itself, its state, its lock.
PARTIAL_SUFFIXES = (".partial", ".partial.json", ".partial.lock")
_PRIVATE = ".private-"


def side_files(dest: Path) -> list[Path]:
    """The files :func:`download` may write beside ``dest`` (with the default partial location):
    the shared partial's names, and the per-process partials on disk now."""
    fixed = [dest.with_name(dest.name + suffix) for suffix in PARTIAL_SUFFIXES]
    return [*fixed, *_private_partials(fixed[0])]


def download(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    desc: str | None = None,
    bar: ProgressBar | None = None,
    partial: Path | None = None,
    connections: int | None = None,
    stall_timeout: float = 30.0,
    retries: int = 6,
    notify: Notify | None = None,
    before_fetch: Callable[[], None] | None = None,
) -> DownloadResult:
    """Download ``url`` to ``dest``, resuming a partial from an earlier attempt, and verify it.

    ``size`` and ``sha256`` (64 lowercase hex digits) are checked when given; ``size`` is learned
    from the server otherwise. ``headers`` go with every request (httpx drops Authorization on
    cross-host redirects). ``client`` is reused when given (its auth, TLS and proxy settings apply);
    otherwise one is made and closed here. ``bar`` is this file's bar, used instead of one made
    here: it gets set_total(size), set_completed(bytes already on disk) and update(n), and is not
    closed. ``notify`` receives informational lines (default: the CLI's stderr). ``partial``
    defaults to ``<dest>.partial``; the state and lock files sit next to it (``<partial>.json``,
    ``<partial>.lock``). ``connections`` caps the parallel ranged requests (default:
    HANZO_DOWNLOAD_CONNECTIONS or 4). A part that receives nothing for ``stall_timeout`` seconds
    is retried; each part gets ``retries`` retries with exponential backoff, renewed whenever it
    makes progress. ``before_fetch`` runs once this process is the one to download (it holds the
    lock and ``dest`` is not complete), before any request: a caller may wait there for the
    server to be ready (a registry mirror caching the file from its upstream).

    Raises RemoteFileNotFoundError (404/410), AuthenticationError (401/403), IntegrityError (wrong
    size or sha256; nothing is kept), DiskFullError (partial kept), DownloadError (other refusals,
    or retries used up: partial kept) and re-raises KeyboardInterrupt after saving a resumable
    partial (only a shared partial outlives its process: see the module's docstring).
    """
    from hanzo_cli.download import engine, policy
    from hanzo_cli.download.job import Job

    dest = Path(dest)
    expected_sha = policy.normalize_sha256(sha256)
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    if notify is None:
        from hanzo_cli.output import info

        notify = info
    label = desc or dest.name
    shared = Path(partial) if partial is not None else dest.with_name(dest.name + ".partial")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shared.parent.mkdir(parents=True, exist_ok=True)

    def run(partial_path: Path) -> DownloadResult:
        if before_fetch is not None:
            before_fetch()
        job = Job(
            url=url,
            dest=dest,
            partial=partial_path,
            expected_size=size,
            expected_sha=expected_sha,
            headers=dict(headers or {}),
            label=label,
            connections=policy.resolve_connections(connections),
            stall_timeout=stall_timeout,
            retries=max(0, retries),
            notify=notify,
            client=client,
        )
        if bar is not None:
            return engine.Downloader(job, bar).run()
        from hanzo_cli.output import progress_bar

        own_bar = progress_bar(label, size)
        try:
            return engine.Downloader(job, own_bar).run()
        finally:
            own_bar.close()

    seen = _stat_key(dest)
    present = engine.existing(dest, size, expected_sha, bar, label, notify) if seen is not None else None
    if present is not None:
        return present
    if expected_sha is None:
        return _run_private(shared, run)

    from filelock import FileLock, Timeout

    lock_path = shared.with_name(shared.name + ".lock")
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0.5)
    except Timeout:
        notify(f"Waiting for another download of {label} to finish...")
        lock.acquire()
    try:
        # Another process may have completed the file while we waited for the lock.
        now = _stat_key(dest)
        result = (
            engine.existing(dest, size, expected_sha, bar, label, notify) if now not in (None, seen) else None
        )
        if result is None:
            result = run(shared)
        # The lock file is clutter next to the model once dest is complete. Removing it while we
        # hold it is safe then (and only then): whoever locks the old or a new lock file re-checks
        # dest before downloading anything. After a failure it stays, with the partial.
        with contextlib.suppress(OSError):
            lock_path.unlink()
        return result
    finally:
        lock.release()


_private_numbers = itertools.count()  # threads of one process pulling the same file


def _run_private(shared: Path, run: Callable[[Path], DownloadResult]) -> DownloadResult:
    """Download into this process's own partial, and remove it (and its state) however it ends."""
    from hanzo_cli.download.state import discard_partial

    _remove_stale_private_partials(shared)
    import socket

    tag = f"{socket.gethostname() or 'localhost'}-{os.getpid()}-{next(_private_numbers)}"
    private = shared.with_name(f"{shared.name}{_PRIVATE}{tag}")
    try:
        return run(private)
    finally:
        discard_partial(private)


_PRIVATE_RE = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-\d+(?:\.json(?:\.tmp)?)?")


def _private_partials(shared: Path) -> list[Path]:
    prefix = shared.name + _PRIVATE
    try:
        names = sorted(p for p in shared.parent.iterdir() if p.name.startswith(prefix))
    except OSError:
        return []
    return [p for p in names if _PRIVATE_RE.fullmatch(p.name[len(prefix) :])]


def _remove_stale_private_partials(shared: Path) -> None:
    """Remove what processes of this host killed before their cleanup left (kill -9, power loss).
    Other hosts' files are left alone: their processes cannot be checked from here."""
    prefix = shared.name + _PRIVATE
    import socket

    host = socket.gethostname() or "localhost"
    for path in _private_partials(shared):
        m = _PRIVATE_RE.fullmatch(path.name[len(prefix) :])
        if m is None or m["host"] != host or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            path.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # (on Windows, os.kill would end the process)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but is not ours to signal
    return True


def _stat_key(path: Path) -> tuple[int, int, int, int] | None:
    """Identity of a file's current version (inode, device, size, mtime), or None if absent."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns
