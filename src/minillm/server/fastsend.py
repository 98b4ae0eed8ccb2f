"""A direct socket write for Hypercorn's Trio worker when one write sends it all.

Why: a sampling profile of 1000 concurrent long SSE streams put about 30 % of
the gateway's CPU in Hypercorn's write path (``TCPServer.protocol_send``).
For each chunk it takes ``send_lock`` (a ``trio.Lock``: a pass through the
scheduler), opens a shielded cancel scope, and calls ``SocketStream.send_all``
(a conflict detector, a memoryview, then ``socket.send`` behind another
checkpoint: a second pass).  Writing the chunk straight to the non-blocking
socket when that is safe cut about 40 % of the CPU per stream on a bare
Hypercorn relay.

What :func:`install` changes: ``hypercorn.trio.tcp_server.TCPServer.protocol_send``
becomes :func:`_protocol_send`.  It writes a :class:`~hypercorn.events.RawData`
with one ``os.write`` on the stream's socket (``SocketStream.socket.fileno()``,
both public; no private attribute is touched) when

- the stream is a plain ``trio.SocketStream`` (TLS streams: Hypercorn's path,
  unchanged), and
- ``send_lock`` is free: no other write is under way or waiting, so the bytes
  cannot overtake earlier ones.

When it falls back to Hypercorn's own ``protocol_send``:

- a partial write: the rest goes through it, which waits until the socket is
  writable (the client's backpressure, as before);
- a full socket buffer (``EAGAIN``): all of it goes through it;
- any other ``OSError`` (``EPIPE``, ``ECONNRESET``, ``EBADF`` once the stream
  is closed, a write after ``send_eof``): all of it goes through it, so
  Hypercorn sees the error and handles ``Closed`` exactly as before;
- every other event (``Closed``, ``Updated``).

A write that goes out whole no longer passes through the scheduler.  That
does not starve other tasks: the relay's channel receive, just before each
write, still yields once per chunk.  Cancellation is not lost either:
Hypercorn shields its own writes.

Where: the two entry points that choose Hypercorn call :func:`install` before
building the app: :func:`minillm.server.serve.serve` (``minillm serve``, and
each of its workers) and the factory :func:`minillm.app.create_app`
(``hypercorn --worker-class trio 'minillm.app:create_app()'``).  The app
itself (:func:`minillm.server.app.create_app`) stays free of it: it is also
served by other ASGI servers and by Quart's test client.  Hypercorn offers no
hook for its writes, so this patches the class, process-wide, on the first
call only; another Hypercorn Trio server in the same process (the tests' fake
upstream, an embedding app) gets the fast path too.
``os.write`` on a socket is POSIX; elsewhere nothing is installed.  If
Hypercorn's ``TCPServer`` no longer has what this relies on (another
version), nothing is installed and a debug line says why.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable

import trio
from hypercorn.events import Event, RawData
from hypercorn.trio.tcp_server import TCPServer

__all__ = ["install", "installed"]

log = logging.getLogger("minillm.server")

_Send = Callable[[TCPServer, Event], Awaitable[None]]
_hypercorn_protocol_send: _Send = TCPServer.protocol_send


async def _protocol_send(self: TCPServer, event: Event) -> None:
    stream: trio.abc.Stream = self.stream  # annotated SSLStream; plain TCP is a SocketStream
    if type(event) is RawData and type(stream) is trio.SocketStream and not self.send_lock.locked():
        data = event.data
        try:
            sent = os.write(stream.socket.fileno(), data)
        except OSError:  # EAGAIN, or an error that Hypercorn's path reports as Closed
            sent = 0
        if sent == len(data):
            return
        if sent:
            event = RawData(data=data[sent:])
    await _hypercorn_protocol_send(self, event)


def _unsupported() -> str | None:
    """Why the fast path cannot be installed here, or None."""
    if os.name != "posix":
        return "os.write on a socket needs POSIX"
    if not callable(getattr(TCPServer, "protocol_send", None)):
        return "hypercorn's TCPServer has no protocol_send"
    init_names = TCPServer.__init__.__code__.co_names
    missing = [name for name in ("send_lock", "stream") if name not in init_names]
    if missing:
        return f"hypercorn's TCPServer sets no {', '.join(missing)}"
    if "data" not in getattr(RawData, "__dataclass_fields__", {}):
        return "hypercorn's RawData has no data field"
    return None


def installed() -> bool:
    """Whether Hypercorn's Trio worker writes through the fast path."""
    return TCPServer.protocol_send is _protocol_send


@functools.cache
def install() -> None:
    """Install the fast path (see the module docstring); the first call only."""
    reason = _unsupported()
    if reason is not None:
        log.debug("hypercorn's write path is left as is: %s", reason)
        return
    TCPServer.protocol_send = _protocol_send  # type: ignore[method-assign]
