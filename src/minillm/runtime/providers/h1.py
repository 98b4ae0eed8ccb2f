"""An HTTP/1.1 transport for httpx on Trio and h11: O(1) work per request and per chunk.

httpx stays the client (requests, responses, exceptions, decoders); this replaces the
connection pool under it.  httpcore's pool walks every connection on every request and
every release, and each body chunk climbs six async layers, a per-read cancel scope and
an exception-mapping context manager.  With a thousand long streams open that was more
than half of a core: a bare Hypercorn relay spent 7.5 ms of CPU per 6-second stream with
httpx's transport and 3.5 ms with this one (``bench/results/issue17.md``).

What it does:

* one keep-alive pool per origin: idle connections on a stack (the most recently used
  first, the least likely to have been closed by the server), expired ones dropped from
  the bottom, and an idle connection the server has closed (readable while idle) dropped
  when it is picked;
* at most ``max_connections`` open and ``max_keepalive_connections`` idle; a request
  waits for a free slot when every connection is busy;
* a request on a reused connection that the server closed before answering anything (the
  keep-alive race) is sent once more on a new connection;
* an answer the server gave before reading the whole request (a 413), then closed, is
  still returned, although the write failed;
* TLS with the caller's ``ssl.SSLContext`` (ALPN ``http/1.1``);
* the ``timeout`` extension: connect, read, write and pool, each optional.

What it does not: HTTP/2, proxies (use ``httpx.AsyncHTTPTransport`` for those), upgrades.

Cancellation: a request or a body read that is cancelled midway closes its connection
(its state is unknown), as does closing a body before its end.  Closing is synchronous,
so it also works from a cancelled scope.
"""

from __future__ import annotations

import contextlib
import math
import os
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import TypeAlias

import h11
import httpx
import trio

__all__ = ["H1Transport"]

READ_SIZE = 64 * 1024

Origin: TypeAlias = tuple[bytes, bytes, int]  # scheme, host, port
_Stream: TypeAlias = trio.SocketStream | trio.SSLStream[trio.SocketStream]


def _limit(value: float | None) -> float:
    """httpx's limits and timeouts: ``None`` is none."""
    return math.inf if value is None else value


class _Connection:
    """One socket to one origin and the h11 state of the exchange on it."""

    __slots__ = ("broken", "fd", "h11", "idle_since", "origin", "reused", "socket", "stream")

    def __init__(self, origin: Origin, stream: _Stream, socket: trio.SocketStream) -> None:
        self.origin = origin
        self.stream = stream
        self.socket = socket.socket  # for closing synchronously and the idle check
        # plain TCP is read straight off the file descriptor (see _receive); TLS is not
        self.fd = self.socket.fileno() if stream is socket else -1
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self.reused = False
        self.broken = False  # the request did not go out whole: never reused

    def close(self) -> None:
        self.fd = -1
        self.socket.close()  # wakes a task waiting on it, with ClosedResourceError

    async def _receive(self) -> bytes | bytearray:
        """What the socket has, once it has something.

        On plain TCP: one wait for readability and one ``read``, where
        ``SocketStream.receive_some`` first tries a read that fails, then waits, then
        reads again, through a conflict detector and a generator context manager.
        That was a tenth of the gateway's CPU with a thousand streams open.
        """
        fd = self.fd
        if fd < 0:
            return await self.stream.receive_some(READ_SIZE)
        while True:
            await trio.lowlevel.wait_readable(fd)
            try:
                return os.read(fd, READ_SIZE)
            except BlockingIOError:  # woken for nothing: wait again
                continue

    def reusable(self) -> bool:
        h = self.h11
        return h.our_state is h11.DONE and h.their_state is h11.DONE and not self.broken

    async def write(self, data: bytes, request: httpx.Request, seconds: float) -> None:
        """Send ``data``: on plain TCP straight to the file descriptor when the socket
        takes it whole (a request usually fits its buffer), else through the stream."""
        try:
            if self.fd >= 0:
                with contextlib.suppress(BlockingIOError):  # full: wait below
                    data = data[os.write(self.fd, data) :]
                if not data:
                    return  # no checkpoint here: the read of the answer is one
            if seconds == math.inf:  # the usual case: the caller's scopes are the deadlines
                await self.stream.send_all(data)
            else:
                with trio.fail_after(seconds):
                    await self.stream.send_all(data)
        except trio.TooSlowError:
            raise httpx.WriteTimeout("timed out writing the request", request=request) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc

    async def next_event(self, request: httpx.Request, seconds: float) -> h11.Event:
        """The next h11 event of the answer, reading from the socket as needed."""
        conn = self.h11
        try:
            while True:
                event = conn.next_event()
                if event is not h11.NEED_DATA:
                    return event  # type: ignore[return-value]
                if seconds == math.inf:
                    data = await self._receive()
                else:
                    with trio.fail_after(seconds):
                        data = await self._receive()
                conn.receive_data(data)  # type: ignore[arg-type]  # bytearray from TLS: fine
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except trio.TooSlowError:
            raise httpx.ReadTimeout("timed out reading the response", request=request) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


class _Stale(Exception):
    """A reused connection closed by the server before any byte of the answer."""


class H1Transport(httpx.AsyncBaseTransport):
    """Pooled HTTP/1.1 connections; see the module docstring."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        ssl_context.set_alpn_protocols(["http/1.1"])
        self._ssl = ssl_context
        self._max_open = _limit(limits.max_connections)
        self._max_idle = _limit(limits.max_keepalive_connections)
        self._expiry = _limit(limits.keepalive_expiry)
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._idle_count = 0
        self._open = 0
        self._slot_freed = trio.lowlevel.ParkingLot()
        self._closed = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return self._idle_count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin: Origin = (url.raw_scheme, url.raw_host, url.port or _DEFAULT_PORTS[url.scheme])
        timeouts = request.extensions.get("timeout", {})
        assert isinstance(request.stream, httpx.AsyncByteStream)
        body = b"".join([part async for part in request.stream])  # bounded by the caller
        reuse = True
        while True:
            conn = await self._checkout(origin, request, timeouts, reuse=reuse)
            try:
                return await self._exchange(conn, request, body, timeouts)
            except _Stale:
                self._discard(conn)
                reuse = False  # once more on a new connection, which is never stale
            except BaseException:
                self._discard(conn)
                raise

    async def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        body: bytes,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        """Send the request and read the answer's head; the body is left to :class:`_Body`."""
        read_timeout = _limit(timeouts.get("read"))
        try:
            data = _encode(conn.h11, request, body)
            try:
                await conn.write(data, request, _limit(timeouts.get("write")))
            except httpx.WriteError as exc:
                # The server may have answered before reading it all (a 413) and closed:
                # that answer is still in the socket, and is the one to give.
                refused: httpx.WriteError | None = exc
                conn.broken = True
            else:
                refused = None
            try:
                event = await _head(conn, request, read_timeout)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                if refused is None:
                    raise
                raise refused from None
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            if conn.reused and _unanswered(conn.h11, exc):  # the keep-alive race
                raise _Stale() from None
            raise
        return httpx.Response(
            event.status_code,
            headers=event.headers.raw_items(),
            stream=_Body(self, conn, request, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": event.reason},
        )

    async def _checkout(
        self,
        origin: Origin,
        request: httpx.Request,
        timeouts: Mapping[str, float | None],
        *,
        reuse: bool,
    ) -> _Connection:
        """An idle connection to ``origin`` (if ``reuse``), or a new one once a slot is free."""
        deadline = math.inf  # set when it first has to wait
        while True:
            if self._closed:
                raise RuntimeError("the transport is closed")
            if reuse and (conn := self._pick_idle(origin)) is not None:
                return conn  # the read of the answer is the checkpoint
            if self._open < self._max_open or self._drop_other_idle():
                break
            if deadline == math.inf:
                deadline = trio.current_time() + _limit(timeouts.get("pool"))
            try:
                with trio.fail_at(deadline):
                    await self._slot_freed.park()
            except trio.TooSlowError:
                raise httpx.PoolTimeout("no connection free in time", request=request) from None
        self._open += 1
        try:
            return await self._connect(origin, request, _limit(timeouts.get("connect")))
        except BaseException:
            self._open -= 1
            self._slot_freed.unpark()
            raise

    def _pick_idle(self, origin: Origin) -> _Connection | None:
        stack = self._idle.get(origin)
        if not stack:
            return None
        now = trio.current_time()
        while stack and now - stack[0].idle_since > self._expiry:
            self._idle_count -= 1
            self._discard(stack.popleft())
        while stack:
            conn = stack.pop()
            self._idle_count -= 1
            if not conn.socket.is_readable():  # readable while idle: closed by the server
                conn.reused = True
                return conn
            self._discard(conn)
        return None

    def _drop_other_idle(self) -> bool:
        """Close one idle connection (to another origin) to make room; False if none."""
        for stack in self._idle.values():
            if stack:
                self._idle_count -= 1
                self._discard(stack.popleft())
                return True
        return False

    async def _connect(self, origin: Origin, request: httpx.Request, seconds: float) -> _Connection:
        scheme, host, port = origin
        try:
            with trio.fail_after(seconds):
                sock = await trio.open_tcp_stream(host.decode("ascii"), port)
                stream: _Stream = sock
                if scheme == b"https":
                    stream = trio.SSLStream(
                        sock, self._ssl, server_hostname=host.decode("ascii"), https_compatible=True
                    )
                    try:
                        await stream.do_handshake()
                    except BaseException:
                        sock.socket.close()
                        raise
        except trio.TooSlowError:
            raise httpx.ConnectTimeout("timed out connecting", request=request) from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(origin, stream, sock)

    def release(self, conn: _Connection) -> None:
        """Take back a connection whose answer has been read to its end."""
        if self._closed or not conn.reusable() or self._idle_count >= self._max_idle:
            self._discard(conn)
            return
        conn.h11.start_next_cycle()
        conn.idle_since = trio.current_time()
        self._idle.setdefault(conn.origin, deque()).append(conn)
        self._idle_count += 1
        self._slot_freed.unpark()

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open -= 1
        self._slot_freed.unpark()

    async def aclose(self) -> None:
        self._closed = True
        for stack in self._idle.values():
            while stack:
                self._discard(stack.pop())
        self._idle.clear()
        self._idle_count = 0
        self._slot_freed.unpark_all()  # whoever waits for a slot learns that it is closed


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _encode(h: h11.Connection, request: httpx.Request, body: bytes) -> bytes:
    """The request's bytes on the wire, framed by h11 (which checks the method, target
    and headers)."""
    url, headers = request.url, request.headers.raw
    try:
        parts = [h.send(h11.Request(method=request.method, target=url.raw_path, headers=headers))]
        if body:
            parts.append(h.send(h11.Data(data=body)))
        parts.append(h.send(h11.EndOfMessage()))
    except h11.LocalProtocolError as exc:
        raise httpx.LocalProtocolError(str(exc), request=request) from exc
    return b"".join(p for p in parts if p)


async def _head(conn: _Connection, request: httpx.Request, read_timeout: float) -> h11.Response:
    """The answer's head, past any 1xx."""
    event = await conn.next_event(request, read_timeout)
    while type(event) is h11.InformationalResponse:
        event = await conn.next_event(request, read_timeout)
    if type(event) is not h11.Response:
        raise httpx.RemoteProtocolError("server closed without an answer", request=request)
    return event


def _unanswered(h: h11.Connection, exc: httpx.TransportError) -> bool:
    """Whether the server closed or reset the connection before any byte of an answer.
    A broken answer is not: the server has seen the request, so it is not sent again."""
    buffered, closed = h.trailing_data
    return not buffered and (closed or not isinstance(exc, httpx.RemoteProtocolError))


class _Body(httpx.AsyncByteStream):
    """A response body read straight off its connection; at its end the connection
    goes back to the pool, and closed before its end the connection is closed."""

    __slots__ = ("_conn", "_request", "_timeout", "_transport")

    def __init__(
        self, transport: H1Transport, conn: _Connection, request: httpx.Request, timeout: float
    ) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._request = request
        self._timeout = timeout

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        try:
            event = await conn.next_event(self._request, self._timeout)
        except BaseException:
            self._end(reusable=False)
            raise
        if type(event) is h11.Data:
            return bytes(event.data)
        self._end(reusable=type(event) is h11.EndOfMessage)
        if type(event) is not h11.EndOfMessage:
            raise httpx.RemoteProtocolError("server closed before the end", request=self._request)
        raise StopAsyncIteration

    def _end(self, *, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if reusable:
            self._transport.release(conn)
        else:
            self._transport._discard(conn)

    async def aclose(self) -> None:
        self._end(reusable=False)
