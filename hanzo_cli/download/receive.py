"""The receive path: a response body straight from its socket into a reused buffer.

httpx hands a body over in 64 KiB ``bytes`` chunks, each through h11's parser: at loopback or
data-centre rates that Python work (under the GIL) is what limits a download, not the network
or the disk. Once httpx has read the status and headers of a plain HTTP/1.1 response framed by
Content-Length, the rest of the body is just bytes on the socket: this reads them with
``recv_into`` in 1 MiB blocks into one preallocated buffer (no allocation, the GIL released while
waiting), which the transfer writes with ``pwrite``. Anything else (chunked bodies, HTTP/2, a
transport whose insides differ) returns None and goes the usual way, ``iter_raw``.

h11 never sees the body, so the connection cannot be reused: closing the response closes it
(httpcore does so for a connection whose response was not read to the end). A part costs one
connection, which at 8 MiB or more per part is noise.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

#: Size of one read, and of each worker's buffer.
RECV_BLOCK = 1 << 20
#: Off: every body through iter_raw (a diagnostic for the benchmarks).
ENABLED = True


class RawBody:
    """The unread rest of one response body: ``buffered`` bytes (read along with the headers),
    then ``length - len(buffered)`` bytes on ``sock``."""

    def __init__(self, buffered: bytes, sock: socket.socket, length: int) -> None:
        self.buffered = buffered
        self.sock = sock
        self.left = length - len(buffered)  # still on the socket

    def recv_into(self, view: memoryview) -> int:
        """Read at most what is left of the body into ``view``; 0 once it is all read. Raises
        ConnectionError when the peer closes early, TimeoutError when nothing came in time."""
        if self.left <= 0:
            return 0
        n = self.sock.recv_into(view[: min(len(view), self.left)])
        if n == 0:
            raise ConnectionError(f"connection closed with {self.left} bytes of the body unread")
        self.left -= n
        return n


def raw_body(response: httpx.Response) -> RawBody | None:
    """The body of ``response`` as a :class:`RawBody`, or None when it must go through httpx."""
    if not ENABLED or response.http_version != "HTTP/1.1":
        return None
    headers = response.headers
    length = headers.get("Content-Length", "")
    if not length.isdigit() or "Transfer-Encoding" in headers:
        return None
    try:
        # httpx's stream -> its transport's -> httpcore's pool -> the HTTP/1.1 connection's.
        stream: Any = response.stream
        connection = stream._stream._httpcore_stream._stream._connection
        parser = connection._h11_state
        sock = connection._network_stream._sock
    except AttributeError:
        return None
    import h11

    if parser.their_state is not h11.SEND_BODY or not isinstance(sock, socket.socket):
        return None
    buffered, closed = parser.trailing_data
    if closed or len(buffered) > int(length):
        return None
    return RawBody(buffered, sock, int(length))
