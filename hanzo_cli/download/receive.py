"""The receive path: a response body straight from its socket into a reused buffer.

httpx hands a body over in 64 KiB ``bytes`` chunks, each through h11's parser: at loopback or
data-centre rates that Python work (under the GIL) is what limits a download, not the network
or the disk. Once httpx has read the status and headers of a plain HTTP/1.1 response framed by
Content-Length, the rest of the body is just bytes on the socket: this reads them with
``recv_into`` in 1 MiB blocks into one preallocated buffer (no allocation, the GIL released while
waiting), which the transfer writes with ``pwrite``. Anything else (chunked bodies, HTTP/2, a
transport whose insides differ) returns None and goes the usual way, ``iter_raw``.

h11 never sees the bytes read here. Once the whole body is read, :meth:`RawBody.release` tells
h11's Content-Length reader that only what it buffered itself is left, so h11 reaches the end of
the message and httpcore puts the connection back in the pool (each part would otherwise cost a
new connection, which on a fast link is a tenth of the time). A body not read to the end (a split
part, an error) leaves h11 mid-body, and closing the response closes the connection.
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

    def __init__(self, buffered: bytes, sock: socket.socket, length: int, parser: Any) -> None:
        self.buffered = buffered
        self.sock = sock
        self.left = length - len(buffered)  # still on the socket
        self._parser = parser  # the connection's h11.Connection

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

    def release(self) -> None:
        """After the whole body was read: let h11 consume what it buffered and see the end of
        the message, so the connection can be reused. Anything unexpected leaves it as it is
        (then the connection is closed, never reused in a wrong state)."""
        if self.left != 0:
            return
        import h11

        try:
            reader = self._parser._reader
            if type(reader).__name__ != "ContentLengthReader" or reader._remaining < len(self.buffered):
                return
            reader._remaining = len(self.buffered)
            for _ in range(3):  # Data (what h11 buffered), then EndOfMessage
                event = self._parser.next_event()
                if isinstance(event, h11.EndOfMessage) or not isinstance(event, h11.Data):
                    return
        except (AttributeError, h11.ProtocolError):
            return


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
    return RawBody(buffered, sock, int(length), parser)
