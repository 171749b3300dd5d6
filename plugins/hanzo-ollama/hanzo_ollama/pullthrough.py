"""Pulling through a pull-through cache without making it fetch a blob from its upstream twice.

A CNCF distribution registry with ``proxy: remoteurl:`` (2.8, ``registry/proxy/proxyblobstore.go``)
serves a blob it does not hold by starting a fill of its storage from the upstream *and* streaming
a second upstream fetch to the client; every request that arrives while the fill runs gets one more
upstream fetch. Those streamed answers are plain 200s without ``Accept-Ranges`` (``copyContent``),
while a blob served from its storage honours ``Range`` (``http.ServeContent``: 206,
``Accept-Ranges: bytes``). The fill goes on when the client that started it goes away: it is not
tied to that request (the upstream client ignores the request's context).

So before downloading a large blob from a mirror, hanzo asks for its first byte. A 206 (or any
answer that is not such a stream) means: download now. A stream means the mirror is filling its
cache: hanzo closes the connection at once (costing the upstream only what socket buffers took in
meanwhile) and asks again, with growing pauses, until the mirror serves the blob from storage; then
the usual parallel ranged download reads it there. A fleet pulling at once thus costs the upstream
about one copy instead of one per node (and per connection). The wait is bounded by the blob's
size; past that, hanzo streams from the mirror as before.

The question is asked over a bare socket with a small receive buffer and segment size set before
connecting, and closed with a reset the moment the headers are in, so a streaming mirror gets as
little as possible in before it notices. (``HEAD`` would be worse: Go's server discards a HEAD
body, so the mirror streams the whole blob from its upstream into nothing.) When the question cannot
be asked that way (no answer: a mirror reached only through an HTTP proxy, say), hanzo downloads
without waiting.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from hanzo_cli.api import human_size

#: Blobs smaller than this are downloaded at once: a second upstream copy of them costs little.
MIN_WAIT_BYTES = 16 << 20
#: The fill rates the waits assume: the first look after size / FAST_FILL (a mirror with a fast
#: link to its upstream is done by then), giving up after WAIT_SLACK + size / SLOW_FILL.
FAST_FILL = 64 << 20
SLOW_FILL = 8 << 20
WAIT_SLACK = 60.0
FIRST_PAUSE = (0.2, 30.0)  # bounds of the first pause, seconds
PAUSE_GROWTH = 1.5
MAX_PAUSE = 30.0
_PROBE_TIMEOUT = 30.0
_MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """The status line and headers of a mirror's answer to ``Range: bytes=0-0``."""

    status: int
    headers: dict[str, str]  # lower-case names

    @property
    def streams_from_upstream(self) -> bool:
        """A registry relaying the blob from its upstream (a cache fill in progress): a whole
        body for a ranged request, without ``Accept-Ranges``."""
        return (
            self.status == 200
            and "accept-ranges" not in self.headers
            and "docker-content-digest" in self.headers
        )


def first_byte(url: str, headers: Mapping[str, str], timeout: float = _PROBE_TIMEOUT) -> Answer | None:
    """Ask for the first byte of ``url``; the answer's head, or None when it could not be had
    (the download that follows reports what is wrong)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Range: bytes=0-0",
        "Accept-Encoding: identity",
        "Connection: close",
        "User-Agent: hanzo",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError:
        return None
    try:
        # Before connecting, so the window and segment size the mirror sees are small: it can
        # push only a little before its writes block or fail.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.settimeout(timeout)
        sock.connect(address)
        if tls:
            import ssl

            import certifi

            context = ssl.create_default_context(cafile=certifi.where())
            sock = context.wrap_socket(sock, server_hostname=host)
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < _MAX_HEAD_BYTES:
            chunk = sock.recv(_MAX_HEAD_BYTES)
            if not chunk:
                break
            head += chunk
    except OSError:
        return None
    finally:
        # A reset, not a FIN: the mirror's next write fails instead of filling buffers.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    return _parse_head(head)


def _parse_head(head: bytes) -> Answer | None:
    text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status_line, *header_lines = text.split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        return None
    found: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            found[name.strip().lower()] = value.strip()
    return Answer(int(fields[1]), found)


def wait_until_cached(
    url: str,
    size: int,
    headers: Mapping[str, str],
    notify: Callable[[str], None],
    *,
    mirror: str,
    label: str,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait while the mirror at ``url`` fills its cache with the blob (see the module docstring).

    True when the mirror serves it from storage now (or answers in any other way: the download
    deals with that); False when the wait's bound passed first (the caller streams it anyway)."""
    if size < MIN_WAIT_BYTES:
        return True
    started = time.monotonic()
    bound = WAIT_SLACK + size / SLOW_FILL
    pause = min(max(size / FAST_FILL, FIRST_PAUSE[0]), FIRST_PAUSE[1])
    told = False
    while True:
        answer = first_byte(url, headers)
        if answer is None or not answer.streams_from_upstream:
            return True
        waited = time.monotonic() - started
        if not told:
            notify(
                f"registry mirror {mirror} is fetching {label} ({human_size(size)}) from its "
                f"upstream; waiting for it to be cached (up to {bound:.0f} s)"
            )
            told = True
        if waited + pause > bound:
            notify(f"registry mirror {mirror}: {label} still not cached after {waited:.0f} s; streaming it")
            return False
        sleep(pause)
        pause = min(pause * PAUSE_GROWTH, MAX_PAUSE)
