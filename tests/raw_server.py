"""A raw HTTP/1.1 server on 127.0.0.1, scripted byte for byte per connection.

``Server(script)`` runs ``script(peer)`` on each accepted connection (over TLS when given a
server ``ssl.SSLContext``) and records what it saw: connections, requests, and the
connections the client closed.  For testing clients at the level of their sockets, where
``upstream.FakeUpstream`` (a real ASGI server) would frame the answers itself.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from functools import partial

import trio

__all__ = ["Peer", "Script", "Server", "answer", "keep_alive", "until_eof"]

Script = Callable[["Peer"], Awaitable[None]]


def answer(body: bytes = b"hi", status: bytes = b"200 OK", headers: bytes = b"") -> bytes:
    length = b"content-length: %d\r\n" % len(body)
    return b"HTTP/1.1 " + status + b"\r\n" + length + headers + b"\r\n" + body


class Peer:
    """The server's side of one connection."""

    def __init__(self, server: Server, stream: trio.abc.Stream, index: int) -> None:
        self.server = server
        self.stream = stream
        self.index = index  # 1 for the first connection the server accepted
        self.served = 0  # requests read on this connection
        self._buf = b""

    async def request(self) -> bytes | None:
        """The next request (head and body), or None once the client has closed."""
        while b"\r\n\r\n" not in self._buf or len(self._buf) < self._wanted():
            data = await self.stream.receive_some(65536)
            if not data:
                self.server.eofs += 1
                return None
            self._buf += data
        size = self._wanted()
        request, self._buf = self._buf[:size], self._buf[size:]
        self.server.requests.append(request)
        self.served += 1
        return request

    def _wanted(self) -> int:
        head, _, _ = self._buf.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        return len(head) + 4 + (int(length[1]) if length else 0)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def reset(self) -> None:
        """Close with a TCP reset."""
        assert isinstance(self.stream, trio.SocketStream)
        linger = struct.pack("ii", 1, 0)
        self.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        self.stream.socket.close()


class Server:
    """A raw server on 127.0.0.1 running ``script`` on each connection, then closing it."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.eofs = 0  # connections the client closed, as the server saw them
        self.url = ""

    async def start(self, nursery: trio.Nursery) -> Server:
        serve = partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}/"
        return self

    async def _handle(self, tcp: trio.SocketStream) -> None:
        self.connections += 1
        stream: trio.abc.Stream = tcp
        if self.tls is not None:
            stream = trio.SSLStream(tcp, self.tls, server_side=True)
        try:
            await self.script(Peer(self, stream, self.connections))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def wait_eofs(self, count: int, timeout: float = 1.0) -> None:
        with trio.fail_after(timeout):
            while self.eofs < count:
                await trio.sleep(0.005)


async def keep_alive(peer: Peer) -> None:
    while await peer.request() is not None:
        await peer.send(answer())


async def until_eof(peer: Peer) -> None:
    """Read the request, answer nothing, wait for the client to go away."""
    while await peer.request() is not None:
        pass
