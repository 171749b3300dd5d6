"""HTTP policy of the downloader: what each answer means, when and how long to retry, redirects.

Nothing here touches files or threads: these are the rules the transfer and the probe follow.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from hanzo_cli.constants import ENV_DOWNLOAD_BACKOFF, ENV_DOWNLOAD_CONNECTIONS
from hanzo_cli.errors import AuthenticationError, DownloadError, RemoteFileNotFoundError

if TYPE_CHECKING:
    import httpx

KiB = 1024
MiB = 1024 * KiB

#: First retry delay in seconds, doubled per failed attempt up to BACKOFF_CAP. The environment
#: variable HANZO_DOWNLOAD_BACKOFF overrides it (tests set it near zero).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: Retry-After values above this are not honoured as such (we back off at most this long).
RETRY_AFTER_CAP = 60.0

#: The cap on parallel connections when neither the caller nor HANZO_DOWNLOAD_CONNECTIONS says (as
#: Ollama's own pull). A transfer starts with fewer and adds more only while throughput rises
#: (see ramp.py): CDN edges cap each connection, a fast link needs few.
DEFAULT_CONNECTIONS = 16
MAX_CONNECTIONS = 32

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE_RE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", re.IGNORECASE)
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}  # no EDQUOT on Windows


class Restart(Exception):
    """Throw the partial away and start from byte 0 (server ignored Range, answered 416, ...)."""

    def __init__(self, reason: str, *, no_ranges: bool = False) -> None:
        super().__init__(reason)
        self.no_ranges = no_ranges


class Retryable(Exception):
    """A transient failure of one request: back off and retry the part."""

    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.status = status  # the HTTP status, when a response said so


def normalize_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if value.startswith("sha256:"):  # registry digests ("sha256:<hex>") are accepted as well
        value = value[len("sha256:") :]
    if not _SHA256_RE.fullmatch(value):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return value


def resolve_connections(connections: int | None) -> int:
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


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based)."""
    delay = min(BACKOFF_CAP, _backoff_base() * 2.0 ** (attempt - 1))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


def safe_url(url: str) -> str:
    """The URL without credentials, query string or fragment (signed CDN links carry secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in _DISK_FULL


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last inclusive, total or None) from ``bytes a-b/total``."""
    if not value:
        return None
    m = _CONTENT_RANGE_RE.fullmatch(value)
    if not m:
        return None
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def new_client(stall_timeout: float, max_connections: int = MAX_CONNECTIONS) -> httpx.Client:
    """The client used when the caller brings none: redirects followed (CDN links), a keep-alive
    pool as large as the parts in flight."""
    import httpx

    from hanzo_cli.tls import ssl_context

    return httpx.Client(
        verify=ssl_context(),
        follow_redirects=True,
        timeout=timeout(stall_timeout),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=max_connections),
    )


def timeout(stall_timeout: float) -> httpx.Timeout:
    import httpx

    # read=stall_timeout is the stall detector: a recv that waits that long fails the request.
    # pool=None: with a caller's client whose pool is smaller than our part count, waiting for
    # a connection is not a stall.
    return httpx.Timeout(stall_timeout, pool=None)


def send(
    client: httpx.Client,
    url: str,
    headers: Mapping[str, str],
    range_start: int | None,
    range_end: int | None,
    stall_timeout: float,
) -> httpx.Response:
    """GET ``url`` (redirects re-resolved each time: CDN links expire), streaming, for the bytes
    [range_start, range_end) or the whole body."""
    sent = dict(headers)
    # Compressed transfer would break byte offsets and Content-Length checks.
    sent["Accept-Encoding"] = "identity"
    if range_start is not None:
        last = "" if range_end is None else str(range_end - 1)
        sent["Range"] = f"bytes={range_start}-{last}"
    request = client.build_request("GET", url, headers=sent, timeout=timeout(stall_timeout))
    return client.send(request, stream=True, follow_redirects=True)


def fail_status(response: httpx.Response, label: str, where: str) -> NoReturn:
    """Raise for a status that is neither a body nor a Range answer: 408/429/5xx are retried
    (honouring Retry-After), 404/410 mean the file is missing, 401/403 a refusal."""
    status = response.status_code
    reason = f"HTTP {status} {response.reason_phrase}".rstrip()
    if status in (408, 429) or status >= 500:
        raise Retryable(reason, retry_after(response), status)
    if status in (404, 410):
        raise RemoteFileNotFoundError(f"{label} not found: {reason} from {where}")
    if status in (401, 403):
        raise AuthenticationError(f"download of {label} refused: {reason} from {where}")
    raise DownloadError(f"download of {label} failed: {reason} from {where}")


def _retryable_transport(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, httpx.TransportError) and not isinstance(
        exc, (httpx.UnsupportedProtocol, httpx.ProxyError)
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def retry_reason(exc: Exception) -> tuple[str, float | None]:
    """Why a request failed and how long the server asked us to wait, for a failure worth
    retrying (5xx/429/stall/reset, a short body); any other exception is re-raised."""
    if isinstance(exc, Retryable):
        return str(exc), exc.retry_after
    if _retryable_transport(exc):
        return _describe(exc), None
    raise exc


def abort_response(response: httpx.Response) -> None:
    """Wake a worker blocked in recv on ``response``'s socket (closing alone may not)."""
    stream: Any = response.extensions.get("network_stream")
    if stream is not None:
        with contextlib.suppress(Exception):
            sock = stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                sock.shutdown(socket.SHUT_RDWR)
