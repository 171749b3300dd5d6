"""The one downloader of hanzo: resumable, parallel, verified HTTP downloads of large files.

Every provider (Ollama registry blobs, Hugging Face files, LM Studio) fetches through
:func:`download`. What it guarantees:

* ``dest`` only ever appears complete: bytes go to a partial file (``<dest>.partial``) that is
  verified (size, sha256), fsynced and atomically renamed into place.
* A download interrupted in any way (Ctrl-C, kill -9, network failure, full disk) resumes where it
  stopped on the next call, in this process or another, from a small JSON state file next to the
  partial (``<partial>.json``) that never claims bytes that were not written.
* Two processes pulling the same file download it once (a file lock on ``<partial>.lock``).
* Memory stays flat whatever the size: bodies are streamed to disk chunk by chunk.

Layout of a transfer: the file is split into ranged parts of at least :data:`MIN_PART_SIZE`
(one part for small files or servers without Range support), fetched in order by up to
``connections`` worker threads over one httpx client, each writing with ``os.pwrite`` into a
preallocated (sparse) partial. A hasher thread follows the contiguous completed prefix with
``os.pread``, so the sha256 is mostly done when the last byte lands. The main thread only draws
progress and waits, so Ctrl-C reaches it promptly.

State file format (version 1)::

    {"version": 1, "size": 1234, "sha256": "<hex>|null", "parts": [[start, end, done], ...]}

``start``/``end`` are byte offsets (end exclusive), ``done`` counts the bytes of the part written
from ``start``. It holds no URL on purpose: registry and CDN links expire or change between runs,
while the bytes they name do not.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import queue
import re
import shutil
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hanzo_cli.constants import ENV_DOWNLOAD_BACKOFF, ENV_DOWNLOAD_CONNECTIONS
from hanzo_cli.errors import (
    AuthenticationError,
    DiskFullError,
    DownloadError,
    IntegrityError,
    RemoteFileNotFoundError,
)
from hanzo_cli.fsutil import fsync_dir
from hanzo_cli.output import ProgressBar, human_size, info, progress_bar

if TYPE_CHECKING:
    import httpx

__all__ = ["PARTIAL_SUFFIXES", "DownloadResult", "download", "side_files"]

#: What a download writes beside its partial file: the partial itself, its state, its lock.
PARTIAL_SUFFIXES = (".partial", ".partial.json", ".partial.lock")


def side_files(dest: Path) -> list[Path]:
    """The files :func:`download` may write beside ``dest`` (with the default partial location)."""
    return [dest.with_name(dest.name + suffix) for suffix in PARTIAL_SUFFIXES]


KiB = 1024
MiB = 1024 * KiB

#: First retry delay in seconds, doubled per failed attempt up to BACKOFF_CAP. The environment
#: variable HANZO_DOWNLOAD_BACKOFF overrides it (tests set it near zero).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: Retry-After values above this are not honoured as such (we back off at most this long).
RETRY_AFTER_CAP = 60.0

#: Files at least this large are split into ranged parts fetched in parallel.
MULTIPART_THRESHOLD = 64 * MiB
#: Smallest part. Parts are handed to the workers in file order, so the completed prefix (which the
#: hasher follows) trails the download by at most ``connections`` parts. Larger files get larger
#: parts (see _plan_parts) so that a 50 GB blob does not need thousands of requests.
MIN_PART_SIZE = 32 * MiB
MAX_PARTS = 256
#: Parallel connections when neither the caller nor HANZO_DOWNLOAD_CONNECTIONS says. On loopback
#: (benchmarks/bench_download.py, 2 cores) 1, 2, 4 and 8 are within noise of each other, as the
#: sha256 is the bottleneck there; over the internet several connections matter, since CDNs cap
#: per-connection throughput.
DEFAULT_CONNECTIONS = 4
MAX_CONNECTIONS = 32

#: The state is saved whenever this many bytes (or 1% of the file, if more) arrived since the last
#: save, so that a kill -9 loses at most about 1% of the file.
SAVE_MIN_BYTES = 512 * KiB
#: Block size of the hasher's reads, and how often it looks for a new one (seconds). Large blocks
#: because the hasher needs the GIL back after every block while the workers keep taking it (each
#: wait can last the 5 ms switch interval); 4 MiB is ~15 ms of hashing per wait.
HASH_BLOCK = 4 * MiB
HASH_POLL = 0.01
#: How often the main thread wakes to draw progress (seconds).
POLL_INTERVAL = 0.1

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE_RE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", re.IGNORECASE)
_STATE_VERSION = 1


@dataclass(frozen=True)
class DownloadResult:
    path: Path  # final file
    size: int
    sha256: str  # hex digest of the final file
    fetched: int  # bytes actually received over the network in this call (0 when already present)
    resumed: bool  # True when a partial from an earlier process was reused


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
) -> DownloadResult:
    """Download ``url`` to ``dest``, resuming a partial from an earlier attempt, and verify it.

    ``size`` and ``sha256`` (64 lowercase hex digits) are checked when given; ``size`` is learned
    from the server otherwise. ``headers`` go with every request (httpx drops Authorization on
    cross-host redirects). ``client`` is reused when given (its auth, TLS and proxy settings apply);
    otherwise one is made and closed here. ``bar`` is this file's bar, used instead of one made
    here: it gets set_total(size), set_completed(bytes already on disk) and update(n), and is not
    closed. ``partial`` defaults to ``<dest>.partial``; the state and lock files sit next to it
    (``<partial>.json``, ``<partial>.lock``).
    ``connections`` caps the parallel ranged requests (default: HANZO_DOWNLOAD_CONNECTIONS or
    DEFAULT_CONNECTIONS). A part that receives nothing for ``stall_timeout`` seconds is retried;
    each part gets ``retries`` retries with exponential backoff, renewed whenever it makes progress.

    Raises RemoteFileNotFoundError (404/410), AuthenticationError (401/403), IntegrityError (wrong
    size or sha256; nothing is kept),
    DiskFullError (partial kept), DownloadError (other refusals, or retries used up: partial kept)
    and re-raises KeyboardInterrupt after saving a resumable partial.
    """
    dest = Path(dest)
    expected_sha = _normalize_sha256(sha256)
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    label = desc or dest.name
    partial_path = Path(partial) if partial is not None else dest.with_name(dest.name + ".partial")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial_path.parent.mkdir(parents=True, exist_ok=True)

    seen = _stat_key(dest)
    present = _existing(dest, size, expected_sha, bar, label) if seen is not None else None
    if present is not None:
        return present

    from filelock import FileLock, Timeout

    lock_path = partial_path.with_name(partial_path.name + ".lock")
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0.5)
    except Timeout:
        info(f"Waiting for another download of {label} to finish...")
        lock.acquire()
    try:
        # Another process may have completed the file while we waited for the lock.
        now = _stat_key(dest)
        result = _existing(dest, size, expected_sha, bar, label) if now not in (None, seen) else None
        if result is None:
            result = _Downloader(
                url=url,
                dest=dest,
                partial=partial_path,
                size=size,
                sha256=expected_sha,
                headers=dict(headers or {}),
                client=client,
                label=label,
                bar=bar,
                connections=_resolve_connections(connections),
                stall_timeout=stall_timeout,
                retries=max(0, retries),
            ).run()
        # The lock file is clutter next to the model once dest is complete. Removing it while we
        # hold it is safe then (and only then): whoever locks the old or a new lock file re-checks
        # dest before downloading anything. After a failure it stays, with the partial.
        with contextlib.suppress(OSError):
            lock_path.unlink()
        return result
    finally:
        lock.release()


# --- helpers ------------------------------------------------------------------------------------


def _normalize_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if value.startswith("sha256:"):  # registry digests ("sha256:<hex>") are accepted as well
        value = value[len("sha256:") :]
    if not _SHA256_RE.fullmatch(value):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return value


def _resolve_connections(connections: int | None) -> int:
    if connections is None:
        env = os.environ.get(ENV_DOWNLOAD_CONNECTIONS, "").strip()
        try:
            connections = int(env) if env else DEFAULT_CONNECTIONS
        except ValueError:
            connections = DEFAULT_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, connections))


def _backoff_base() -> float:
    env = os.environ.get(ENV_DOWNLOAD_BACKOFF, "").strip()
    try:
        return max(0.0, float(env)) if env else BACKOFF_BASE
    except ValueError:
        return BACKOFF_BASE


def _backoff(attempt: int, retry_after: float | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based)."""
    delay = min(BACKOFF_CAP, _backoff_base() * 2.0 ** (attempt - 1))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


def _safe_url(url: str) -> str:
    """The URL without credentials, query string or fragment (signed CDN links carry secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _hash_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    total = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(HASH_BLOCK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
            total += n
    return total, h.hexdigest()


def _stat_key(path: Path) -> tuple[int, int, int, int] | None:
    """Identity of a file's current version (inode, device, size, mtime), or None if absent."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns


# Windows has no os.pwrite/os.pread and opens files in text mode unless told otherwise. Every
# thread has a descriptor of its own, so seek + write is as safe there as pwrite here.
_O_BINARY: int = getattr(os, "O_BINARY", 0)


def _pwrite(fd: int, data: memoryview, pos: int) -> int:
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, pos)
    os.lseek(fd, pos, os.SEEK_SET)  # pragma: no cover - Windows
    return os.write(fd, data)  # pragma: no cover


def _pread_into(fd: int, buf: memoryview, pos: int) -> int:
    """Read into a reused buffer: a fresh bytes object per block costs a malloc and page faults."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buf], pos)
    os.lseek(fd, pos, os.SEEK_SET)  # pragma: no cover - Windows
    data = os.read(fd, len(buf))  # pragma: no cover
    buf[: len(data)] = data  # pragma: no cover
    return len(data)  # pragma: no cover


def _existing(
    dest: Path, size: int | None, sha256: str | None, bar: ProgressBar | None, label: str
) -> DownloadResult | None:
    """A result for a complete ``dest``, or None when it is absent or corrupt.

    Files only reach ``dest`` through a verified rename, so an existing file with no expectations
    to check is taken as complete. One whose size or sha256 differs from the expected values is
    treated as corrupt (truncated by hand, bit rot, an older version): it is downloaded again into
    the partial and atomically replaced, rather than silently kept or deleted before a good copy
    exists.
    """
    try:
        st = dest.stat()
    except FileNotFoundError:
        return None
    if size is not None and st.st_size != size:
        info(f"{label}: existing file has {st.st_size} bytes, expected {size}; downloading again")
        return None
    actual_size, digest = _hash_file(dest)
    if sha256 is not None and digest != sha256:
        info(f"{label}: existing file does not match its sha256; downloading again")
        return None
    if bar is not None:
        bar.set_total(actual_size)
        bar.set_completed(actual_size)
    return DownloadResult(path=dest, size=actual_size, sha256=digest, fetched=0, resumed=False)


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}  # no EDQUOT on Windows


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in _DISK_FULL


def _parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last inclusive, total or None) from ``bytes a-b/total``."""
    if not value:
        return None
    m = _CONTENT_RANGE_RE.fullmatch(value)
    if not m:
        return None
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _plan_parts(size: int | None, connections: int, ranges: bool) -> list[_Part]:
    if size is None:
        return [_Part(0, None)]
    if not ranges or connections <= 1 or size < MULTIPART_THRESHOLD:
        return [_Part(0, size)]
    part_size = max(MIN_PART_SIZE, -(-size // MAX_PARTS))
    part_size = -(-part_size // MiB) * MiB  # whole MiB: page- and block-aligned writes
    return [_Part(start, min(start + part_size, size)) for start in range(0, size, part_size)]


class _Part:
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


# Internal control flow between the workers and the coordinator.


class _Restart(Exception):
    """Throw the partial away and start from byte 0 (server ignored Range, answered 416, ...)."""

    def __init__(self, reason: str, *, no_ranges: bool = False) -> None:
        super().__init__(reason)
        self.no_ranges = no_ranges


class _Retryable(Exception):
    """A transient failure of one request: back off and retry the part."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Probe:
    def __init__(self, size: int | None, ranges: bool, response: httpx.Response | None) -> None:
        self.size = size
        self.ranges = ranges
        self.response = response  # an open 200 response to reuse as the body, if any


class _Attempt:
    """What the threads of one attempt share. A fresh one per attempt, so that a worker stuck in
    a syscall past its attempt can never touch the next attempt's parts, events or state."""

    def __init__(self, parts: list[_Part], save_every: int) -> None:
        self.parts = parts
        self.lock = threading.Lock()  # guards parts' done/end, fetched, since_save, error, active
        self.cancel = threading.Event()
        self.ranges_ok = threading.Event()  # a 206 arrived (or the plan no longer has several parts)
        self.workers_done = threading.Event()
        self.hash_wake = threading.Event()
        self.error: BaseException | None = None
        self.active: set[httpx.Response] = set()
        self.work: queue.SimpleQueue[_Part] = queue.SimpleQueue()
        self.fetched = 0
        self.since_save = 0
        self.save_every = save_every
        self.save_wanted = threading.Event()  # wakes the saver thread
        self.save_lock = threading.Lock()  # one state write at a time, in claim order
        self.state_closed = False  # set once the attempt is over: late writes claim nothing
        self.digest: str | None = None
        self.hashed = 0

    def completed(self) -> int:
        with self.lock:
            return sum(p.done for p in self.parts)

    def frontier(self) -> int:
        """End of the contiguous completed prefix of the file."""
        with self.lock:
            frontier = 0
            for p in self.parts:
                frontier = p.pos
                if not p.complete:
                    break
            return frontier

    def record_error(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.stop_threads()

    def stop_threads(self) -> None:
        self.cancel.set()
        self.ranges_ok.set()  # release workers waiting for the first answer
        self.hash_wake.set()
        self.save_wanted.set()


class _Downloader:
    def __init__(
        self,
        *,
        url: str,
        dest: Path,
        partial: Path,
        size: int | None,
        sha256: str | None,
        headers: dict[str, str],
        client: httpx.Client | None,
        label: str,
        bar: ProgressBar | None,
        connections: int,
        stall_timeout: float,
        retries: int,
    ) -> None:
        self.url = url
        self.safe_url = _safe_url(url)
        self.dest = dest
        self.partial = partial
        self.state_path = partial.with_name(partial.name + ".json")
        self.expected_size = size
        self.expected_sha = sha256
        self.headers = headers
        self.client = client
        self.label = label
        self.caller_bar = bar
        self.connections = connections
        self.stall_timeout = stall_timeout
        self.retries = retries
        self.size: int | None = size  # expected, or learned from the server
        self.fetched = 0  # over all attempts of this call
        self.resumed = False
        self.ranges_unsupported = False  # learned: the server ignores Range

    # --- top level ----------------------------------------------------------------------------

    def run(self) -> DownloadResult:
        import httpx

        own_client = self.client is None
        if self.client is None:
            self.client = httpx.Client(
                follow_redirects=True,
                timeout=self._timeout(),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=MAX_CONNECTIONS),
            )
        bar = self.caller_bar if self.caller_bar is not None else progress_bar(self.label, self.expected_size)
        restarts = 0
        try:
            while True:
                try:
                    return self._attempt(bar)
                except _Restart as exc:
                    # Bounded so that a server that keeps changing its mind cannot loop us forever.
                    restarts += 1
                    if restarts > max(2, self.retries):
                        raise DownloadError(
                            f"download of {self.label} failed: {exc} ({self.safe_url}); "
                            f"gave up after {restarts - 1} restarts"
                        ) from None
                    if exc.no_ranges:
                        self.ranges_unsupported = True
                    self.resumed = False
                    self._discard_partial()
                    if restarts > 1:
                        time.sleep(_backoff(restarts - 1))
                except IntegrityError:
                    self._discard_partial()  # wrong bytes are worth nothing, not even for resuming
                    raise
        finally:
            if own_client:
                self.client.close()
            if self.caller_bar is None:
                bar.close()

    def _timeout(self) -> httpx.Timeout:
        import httpx

        # read=stall_timeout is the stall detector: a recv that waits that long fails the request.
        # pool=None: with a caller's client whose pool is smaller than our part count, waiting for
        # a connection is not a stall.
        return httpx.Timeout(self.stall_timeout, pool=None)

    def _attempt(self, bar: ProgressBar) -> DownloadResult:
        probe: _Probe | None = None
        if self.expected_size is None:
            probe = self._probe()
            self.size = probe.size
            if not probe.ranges:
                self.ranges_unsupported = True
        else:
            self.size = self.expected_size
        first_response = probe.response if probe is not None else None
        try:
            if self.size is not None:
                bar.set_total(self.size)
            ranges = not self.ranges_unsupported
            parts = self._load_state() if ranges and self.size is not None else None
            fresh = parts is None
            if parts is None:
                parts = _plan_parts(self.size, self.connections, ranges)
            else:
                self.resumed = any(p.done for p in parts)
            save_every = SAVE_MIN_BYTES if self.size is None else max(SAVE_MIN_BYTES, self.size // 100)
            ctx = _Attempt(parts, save_every)
            self._check_disk(ctx)
            if fresh:
                self._create_partial()
            self._save_state(ctx)
            already = ctx.completed()
            bar.set_completed(already)
            pending = [p for p in parts if not p.complete]
            if pending:
                response, first_response = first_response, None
                self._transfer(ctx, bar, pending, already, response)
        finally:
            if first_response is not None:
                first_response.close()
        return self._finish(ctx)

    # --- requests -----------------------------------------------------------------------------

    def _send(self, range_start: int | None, range_end: int | None) -> httpx.Response:
        """GET the original URL (redirects re-resolved each time: CDN links expire), streaming."""
        assert self.client is not None
        headers = dict(self.headers)
        # Compressed transfer would break byte offsets and Content-Length checks.
        headers["Accept-Encoding"] = "identity"
        if range_start is not None:
            last = "" if range_end is None else str(range_end - 1)
            headers["Range"] = f"bytes={range_start}-{last}"
        request = self.client.build_request("GET", self.url, headers=headers, timeout=self._timeout())
        return self.client.send(request, stream=True, follow_redirects=True)

    def _fail_status(self, response: httpx.Response) -> None:
        """Raise for a status that is neither a body nor a Range answer."""
        status = response.status_code
        reason = f"HTTP {status} {response.reason_phrase}".rstrip()
        if status in (408, 429) or status >= 500:
            raise _Retryable(reason, _retry_after(response))
        if status in (404, 410):
            raise RemoteFileNotFoundError(f"{self.label} not found: {reason} from {self.safe_url}")
        if status in (401, 403):
            raise AuthenticationError(f"download of {self.label} refused: {reason} from {self.safe_url}")
        raise DownloadError(f"download of {self.label} failed: {reason} from {self.safe_url}")

    @staticmethod
    def _retryable_transport(exc: BaseException) -> bool:
        import httpx

        return isinstance(exc, httpx.TransportError) and not isinstance(
            exc, (httpx.UnsupportedProtocol, httpx.ProxyError)
        )

    @staticmethod
    def _describe(exc: BaseException) -> str:
        text = str(exc)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def _retry_reason(self, exc: Exception) -> tuple[str, float | None]:
        """Why a request failed and how long the server asked us to wait, for a failure worth
        retrying (5xx/429/stall/reset, a short body); any other exception is re-raised."""
        if isinstance(exc, _Retryable):
            return str(exc), exc.retry_after
        if self._retryable_transport(exc):
            return self._describe(exc), None
        raise exc

    def _probe(self) -> _Probe:
        """Learn the size and Range support with ``Range: bytes=0-0``."""
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                if self.ranges_unsupported:
                    # Known not to do ranges: the plain GET is the body itself.
                    response = self._send(None, None)
                    if response.status_code != 200:
                        try:
                            self._fail_status(response)
                        finally:
                            response.close()
                    return _Probe(_content_length(response), False, response)
                return self._interpret_probe(self._send(0, 1))
            except Exception as exc:  # noqa: BLE001 - _retry_reason re-raises the rest
                reason, retry_after = self._retry_reason(exc)
            attempt += 1
            if attempt > self.retries:
                raise DownloadError(
                    f"download of {self.label} failed after {self.retries} retries: {reason} "
                    f"({self.safe_url})"
                )
            time.sleep(_backoff(attempt, retry_after))

    def _interpret_probe(self, response: httpx.Response) -> _Probe:
        status = response.status_code
        if status == 206:
            try:
                cr = _parse_content_range(response.headers.get("Content-Range"))
                if (_content_length(response) or 0) <= 64 * KiB:
                    response.read()  # one byte; lets the connection be reused
            finally:
                response.close()
            if cr is None or cr[0] != 0 or cr[2] is None:
                # A 206 without a usable total: do not trust this server's ranges.
                self.ranges_unsupported = True
                raise _Retryable("unusable Content-Range in the answer to bytes=0-0")
            return _Probe(cr[2], True, None)
        if status == 200:
            # No Range support: this response is the whole body from byte 0; keep it open.
            return _Probe(_content_length(response), False, response)
        if status == 416:
            content_range = response.headers.get("Content-Range", "")
            response.close()
            m = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", content_range)
            if m and int(m.group(1)) == 0:
                return _Probe(0, True, None)  # an empty file cannot satisfy bytes=0-0
            self.ranges_unsupported = True
            raise _Retryable("HTTP 416 to bytes=0-0")
        try:
            self._fail_status(response)
        finally:
            response.close()
        raise AssertionError("unreachable")  # _fail_status always raises

    # --- partial and state --------------------------------------------------------------------

    def _create_partial(self) -> None:
        """Start a fresh partial, preallocated (sparse) to the size when known."""
        try:
            fd = os.open(self.partial, os.O_RDWR | os.O_CREAT | _O_BINARY, 0o644)
            try:
                os.ftruncate(fd, 0)  # drop stale content from an unusable earlier attempt
                if self.size:
                    os.ftruncate(fd, self.size)
            finally:
                os.close(fd)
        except OSError as exc:
            if _is_disk_full(exc):
                raise self._disk_full_error(exc) from None
            raise

    def _discard_partial(self) -> None:
        for path in (self.state_path, self.partial):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _load_state(self) -> list[_Part] | None:
        """The parts of a compatible earlier attempt, or None to start afresh."""
        try:
            data = json.loads(self.state_path.read_text())
            partial_size = self.partial.stat().st_size
        except (OSError, ValueError):
            return None
        try:
            if data.get("version") != _STATE_VERSION or data.get("size") != self.size:
                return None
            old_sha = data.get("sha256")
            if old_sha is not None and self.expected_sha is not None and old_sha != self.expected_sha:
                return None  # the state of another file that used the same partial path
            parts = [_Part(int(s), int(e), int(d)) for s, e, d in data["parts"]]
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        # The parts must tile [0, size), and the partial must be as long as the file.
        expect = 0
        for p in parts:
            assert p.end is not None
            if p.start != expect or p.end < p.start or not 0 <= p.done <= p.end - p.start:
                return None
            expect = p.end
        if expect != self.size or partial_size != self.size or not parts:
            return None
        return parts

    def _save_state(self, ctx: _Attempt, *, final: bool = False) -> None:
        """Write the state atomically (temp + rename); with ``final``, the attempt's last word.

        The snapshot is taken under save_lock, so writes land in claim order, and after the
        bytes it claims were written (workers claim only written bytes).

        Not fsynced: the threat is a killed process, and the page cache outlives it. After a power
        loss the state may claim bytes that never reached the disk; the sha256 check catches that
        (without a sha256 such a file could be wrong, one more reason providers pass digests).
        """
        with ctx.save_lock:
            with ctx.lock:
                if ctx.state_closed:
                    return
                ctx.since_save = 0
                ctx.state_closed = final
                text = json.dumps(
                    {
                        "version": _STATE_VERSION,
                        "size": self.size,
                        "sha256": self.expected_sha,
                        "parts": [[p.start, p.end, p.done] for p in ctx.parts],
                    }
                )
            tmp = self.state_path.with_name(self.state_path.name + ".tmp")
            try:
                tmp.write_text(text)
                os.replace(tmp, self.state_path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                if _is_disk_full(exc):
                    raise self._disk_full_error(exc) from None
                raise

    def _saver(self, ctx: _Attempt) -> None:
        """Save the state when the workers ask (every 1%): a rename can take milliseconds on
        ext4, which the workers should spend receiving."""
        try:
            while not (ctx.cancel.is_set() or ctx.state_closed):
                if ctx.save_wanted.wait(1.0):
                    ctx.save_wanted.clear()
                    if not (ctx.cancel.is_set() or ctx.state_closed):
                        self._save_state(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises
            ctx.record_error(exc)

    def _check_disk(self, ctx: _Attempt) -> None:
        need = sum(p.remaining() for p in ctx.parts)
        if need <= 0:
            return
        free = shutil.disk_usage(self.partial.parent).free
        if need > free:
            raise DiskFullError(
                f"not enough disk space to download {self.label}: need {human_size(need)}, "
                f"have {human_size(free)} free in {self.partial.parent}"
            )

    def _disk_full_error(self, exc: OSError) -> DiskFullError:
        what = "disk full" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return DiskFullError(
            f"{what} while downloading {self.label} to {self.partial.parent}; "
            "free some space and run again to resume"
        )

    # --- transfer -----------------------------------------------------------------------------

    def _transfer(
        self,
        ctx: _Attempt,
        bar: ProgressBar,
        pending: list[_Part],
        already: int,
        first_response: httpx.Response | None,
    ) -> None:
        for p in pending:
            ctx.work.put(p)
        if first_response is not None or len(pending) == 1:
            ctx.ranges_ok.set()  # nothing to protect: there is only one request to make
        n_workers = min(self.connections, len(pending))
        workers = [
            threading.Thread(
                target=self._worker,
                args=(ctx, i, first_response if i == 0 else None),
                name=f"hanzo-download-{i}",
                daemon=True,  # a worker stuck in a syscall must not keep the CLI alive
            )
            for i in range(n_workers)
        ]
        hasher = threading.Thread(target=self._hasher, args=(ctx,), name="hanzo-hash", daemon=True)
        saver = threading.Thread(target=self._saver, args=(ctx,), name="hanzo-state", daemon=True)
        helpers = [hasher, saver]
        shown = already
        try:
            for t in [*helpers, *workers]:
                t.start()
            for t in workers:
                while t.is_alive():
                    t.join(POLL_INTERVAL)
                    shown = self._show_progress(ctx, bar, shown)
            shown = self._show_progress(ctx, bar, shown)
            if ctx.error is None and any(p.end is not None and not p.complete for p in ctx.parts):
                # Cannot happen unless a code path above forgot to raise: keep what we have.
                ctx.record_error(DownloadError(f"download of {self.label} stopped early; run it again"))
            if ctx.error is None:
                ctx.workers_done.set()
                ctx.hash_wake.set()
                while hasher.is_alive():
                    hasher.join(POLL_INTERVAL)
            if ctx.error is None:
                # Complete: no state write may land after _finish removes the state file.
                with ctx.save_lock, ctx.lock:
                    ctx.state_closed = True
                ctx.save_wanted.set()
                saver.join()
        except BaseException:
            # Ctrl-C (or a failing progress bar): stop the workers, keep a resumable partial.
            self._stop(ctx, [*workers, *helpers])
            raise
        finally:
            with ctx.lock:
                self.fetched += ctx.fetched
                ctx.fetched = 0
        if ctx.error is not None:
            self._stop(ctx, [*workers, *helpers])
            raise ctx.error

    def _show_progress(self, ctx: _Attempt, bar: ProgressBar, shown: int) -> int:
        current = ctx.completed()
        if current != shown:
            bar.update(current - shown)
        return current

    def _stop(self, ctx: _Attempt, threads: list[threading.Thread]) -> None:
        """Cancel the threads promptly and leave a consistent, resumable state on disk."""
        ctx.stop_threads()
        with ctx.lock:
            responses = list(ctx.active)
        for response in responses:
            _abort_response(response)
        deadline = time.monotonic() + 5.0
        for t in threads:
            if t.ident is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        if self.partial.exists():
            # Workers still stuck may write more later, but can no longer claim it.
            with contextlib.suppress(OSError, DiskFullError):
                self._save_state(ctx, final=True)
        with ctx.lock:
            ctx.state_closed = True

    def _worker(self, ctx: _Attempt, index: int, first_response: httpx.Response | None) -> None:
        fd = -1
        try:
            fd = os.open(self.partial, os.O_WRONLY | _O_BINARY)
            while not ctx.cancel.is_set():
                if index > 0 and not ctx.ranges_ok.is_set():
                    # Until one 206 arrives, only worker 0 asks: a server that ignores Range would
                    # send the whole file to every connection.
                    ctx.ranges_ok.wait(POLL_INTERVAL)
                    continue
                try:
                    part = ctx.work.get_nowait()
                except queue.Empty:
                    return
                response, first_response = first_response, None
                self._fetch_part(ctx, fd, part, response)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises
            ctx.record_error(exc)
        finally:
            if first_response is not None:
                first_response.close()
            if fd >= 0:
                os.close(fd)

    def _fetch_part(self, ctx: _Attempt, fd: int, part: _Part, response: httpx.Response | None) -> None:
        attempt = 0
        while not ctx.cancel.is_set() and not part.complete:
            start_pos = part.pos
            retry_after: float | None = None
            try:
                if response is None:
                    if self.ranges_unsupported:
                        response = self._send(None, None)
                    else:
                        response = self._send(part.pos, part.end)
                current, response = response, None
                self._stream(ctx, fd, part, current)
                if part.end is None or part.complete or ctx.cancel.is_set():
                    return  # (unknown size: the body ended where the file ends)
                if part.pos > start_pos and not self.ranges_unsupported:
                    # A complete response with a shorter range than asked for (some servers cap
                    # ranges): ask for the rest at once.
                    attempt = 0
                    continue
                raise _Retryable(f"response ended at byte {part.pos} of {part.end}")
            except Exception as exc:  # noqa: BLE001 - _retry_reason re-raises the rest
                reason, retry_after = self._retry_reason(exc)
            finally:
                if response is not None:
                    response.close()
                    response = None
            if ctx.cancel.is_set():
                return
            if self.ranges_unsupported or part.end is None:
                # Without Range support the only way to go on is from byte 0.
                raise _Restart(f"{reason}; the server cannot resume", no_ranges=True)
            if part.pos > start_pos:
                attempt = 0  # progress was made: the connection is flaky, not dead
            attempt += 1
            if attempt > self.retries:
                raise DownloadError(
                    f"download of {self.label} failed after {self.retries} retries: {reason} "
                    f"({self.safe_url}); {human_size(ctx.completed())} of {human_size(self.size)} "
                    "kept, running it again resumes"
                )
            ctx.cancel.wait(_backoff(attempt, retry_after))

    def _check_response(self, ctx: _Attempt, part: _Part, response: httpx.Response) -> None:
        """Accept ``response`` as the body of ``part``'s remaining bytes, or raise."""
        status = response.status_code
        if status == 206 and not self.ranges_unsupported:
            cr = _parse_content_range(response.headers.get("Content-Range"))
            if cr is None or cr[0] != part.pos:
                raise _Restart("the server sent another range than the one asked for", no_ranges=True)
            total = cr[2]
            if total is not None and self.size is not None and total != self.size:
                self._size_changed(total)
            ctx.ranges_ok.set()
            return
        if status == 200:
            length = _content_length(response)
            if length is not None and self.size is not None and length != self.size:
                self._size_changed(length)
            if part.pos == 0 and self._collapse_to_one_part(ctx, part):
                return
            # A 200 answers a ranged request with the whole file: splicing it in would corrupt
            # the partial, so start over without ranges.
            raise _Restart("the server ignored the Range header", no_ranges=True)
        if status == 416:
            # Only incomplete parts are requested (never one that is complete: some registries
            # answer those with a 416 and a wrong Content-Length), so the server's file is
            # shorter than ours.
            raise _Restart("the server answered 416 Range Not Satisfiable")
        self._fail_status(response)

    def _size_changed(self, actual: int) -> None:
        if self.expected_size is not None:
            raise IntegrityError(
                f"size mismatch for {self.label}: expected {self.expected_size} bytes, "
                f"the server has {actual} ({self.safe_url})"
            )
        raise _Restart(f"the file changed on the server ({self.size} -> {actual} bytes)")

    def _collapse_to_one_part(self, ctx: _Attempt, part: _Part) -> bool:
        """Make the whole file one part when the first request got the whole body (a 200).

        Possible while no other worker has asked (they wait for ranges_ok) and nothing is on disk:
        this response is then exactly the file from byte 0, worth using rather than throwing away.
        """
        with ctx.lock:
            if part is not ctx.parts[0] or any(p.done for p in ctx.parts):
                return False
            if len(ctx.parts) > 1 and ctx.ranges_ok.is_set():
                return False
            part.end = self.size
            ctx.parts[:] = [part]
            while True:
                try:
                    ctx.work.get_nowait()
                except queue.Empty:
                    break
            self.ranges_unsupported = True
        ctx.ranges_ok.set()  # waiting workers find no work and exit
        return True

    def _stream(self, ctx: _Attempt, fd: int, part: _Part, response: httpx.Response) -> None:
        with ctx.lock:
            ctx.active.add(response)
        try:
            self._check_response(ctx, part, response)
            pos = part.pos
            end = part.end
            for chunk in response.iter_raw():
                if ctx.cancel.is_set():
                    return
                if end is not None and pos + len(chunk) > end:
                    chunk = chunk[: end - pos]  # never write past the part (a server bug)
                if chunk:
                    self._write(fd, chunk, pos)
                    pos += len(chunk)
                    self._advance(ctx, part, len(chunk))
                if end is not None and pos >= end:
                    return
        finally:
            with ctx.lock:
                ctx.active.discard(response)
            response.close()

    def _write(self, fd: int, data: bytes, pos: int) -> None:
        view = memoryview(data)
        try:
            while view:
                n = _pwrite(fd, view, pos)
                view = view[n:]
                pos += n
        except OSError as exc:
            if _is_disk_full(exc):
                raise self._disk_full_error(exc) from None
            raise

    def _advance(self, ctx: _Attempt, part: _Part, n: int) -> None:
        """Claim ``n`` more bytes of ``part`` (already written) and save the state now and then."""
        with ctx.lock:
            part.done += n
            ctx.fetched += n
            ctx.since_save += n
            save = ctx.since_save >= ctx.save_every
        if save:
            ctx.save_wanted.set()

    # --- hashing ------------------------------------------------------------------------------

    def _hasher(self, ctx: _Attempt) -> None:
        """Hash the file's completed prefix while the rest downloads (rehashing resumed bytes)."""
        h = hashlib.sha256()
        hashed = 0
        view = memoryview(bytearray(HASH_BLOCK))
        fd = -1
        try:
            fd = os.open(self.partial, os.O_RDONLY | _O_BINARY)
            while not ctx.cancel.is_set():
                done = ctx.workers_done.is_set()  # read before the frontier: then it is final
                available = ctx.frontier() - hashed
                # Whole blocks only, until the end: waking for every 64 KiB network chunk would
                # cost more CPU in thread switches than the copies it saves.
                if available >= HASH_BLOCK or (done and available > 0):
                    n = _pread_into(fd, view[: min(HASH_BLOCK, available)], hashed)
                    if n <= 0:
                        raise OSError(f"{self.partial} is shorter than its state says")
                    h.update(view[:n])
                    hashed += n
                    continue
                if done:
                    ctx.hashed = hashed
                    ctx.digest = h.hexdigest()
                    return
                ctx.hash_wake.wait(HASH_POLL)
                ctx.hash_wake.clear()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises
            ctx.record_error(exc)
        finally:
            if fd >= 0:
                os.close(fd)

    # --- completion ---------------------------------------------------------------------------

    def _finish(self, ctx: _Attempt) -> DownloadResult:
        if ctx.digest is None:
            # Nothing was transferred in this attempt (the partial was already complete).
            ctx.hashed, ctx.digest = _hash_file(self.partial)
        if self.size is None:
            # Unknown length: the body ended where it ended; drop any stale tail.
            os.truncate(self.partial, ctx.parts[-1].pos)
        actual = self.partial.stat().st_size
        expected = self.size if self.size is not None else ctx.hashed
        if actual != expected or ctx.hashed != actual:
            raise IntegrityError(f"size mismatch for {self.label}: expected {expected} bytes, got {actual}")
        if self.expected_sha is not None and ctx.digest != self.expected_sha:
            raise IntegrityError(
                f"sha256 mismatch for {self.label}: expected {self.expected_sha}, got {ctx.digest}"
            )
        # Durable before visible: the data, then the rename, then the directory entry.
        fd = os.open(self.partial, os.O_RDONLY | _O_BINARY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.partial, self.dest)
        fsync_dir(self.dest.parent)
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()
        return DownloadResult(
            path=self.dest, size=actual, sha256=ctx.digest, fetched=self.fetched, resumed=self.resumed
        )


def _abort_response(response: httpx.Response) -> None:
    """Wake a worker blocked in recv on ``response``'s socket (closing alone may not)."""
    stream: Any = response.extensions.get("network_stream")
    if stream is not None:
        with contextlib.suppress(Exception):
            sock = stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                sock.shutdown(socket.SHUT_RDWR)
