"""Relay an upstream SSE stream to the client: nursery, bounded channel, deadlines.

:class:`RelayBody` is a Quart response body.  Quart enters it with
``async with body: async for chunk in body: await send(chunk)`` in the task
that writes to the client, so the nursery opened in ``__aenter__`` lives
exactly as long as the response is being written, and its cancel scope
covers that writing too.  Cancellation therefore reaches both sides:

* client disconnect or server shutdown cancels the request task, which
  cancels the pump, and ``__aexit__`` closes the upstream response;
* the pump cancels the whole relay when the client stops reading for
  ``idle_timeout`` seconds, so a stalled reader never pins an upstream.

A stream that ends with an error event (its own, or the upstream's) is
reported to ``on_error``, so that it is counted as failed although its HTTP
status was 200.

The channel holds at most :data:`CHANNEL_SIZE` chunks: a slow client slows the
upstream reads (backpressure) and memory per stream stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import aclosing, contextmanager
from types import TracebackType
from typing import Protocol, Self

import trio
from quart.wrappers.response import ResponseBody

from minillm.core.dialects import Dialect
from minillm.core.errors import GatewayError, UpstreamTimeout
from minillm.runtime.attempt import StreamReply
from minillm.runtime.providers.http import UpstreamResponse, upstream_errors

__all__ = ["CHANNEL_SIZE", "RelayBody", "StreamRegistry"]

log = logging.getLogger("minillm.relay")

CHANNEL_SIZE = 8


class StreamStalled(UpstreamTimeout):
    default_message = "Provider stream stalled"


class _Endable(Protocol):
    def end(self, reason: GatewayError) -> None: ...


class _Waiting:
    """A request whose answer has not started: ending it cancels what it waits for."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.reason = GatewayError()

    def end(self, reason: GatewayError) -> None:
        self.reason = reason
        self.scope.cancel()


class StreamRegistry:
    """The streams one app is relaying, and the requests still waiting for their
    answer, so that a shutdown can end them cleanly."""

    def __init__(self) -> None:
        self._relays: set[_Endable] = set()

    def __len__(self) -> int:
        return len(self._relays)

    def add(self, relay: _Endable) -> None:
        self._relays.add(relay)

    def discard(self, relay: _Endable) -> None:
        self._relays.discard(relay)

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Run the block (a request until its answer starts); when :meth:`end_all`
        ends it first, raise the reason instead (answered as an error)."""
        waiting = _Waiting()
        self.add(waiting)
        try:
            with waiting.scope:
                yield
        finally:
            self.discard(waiting)
        if waiting.scope.cancelled_caught:
            raise waiting.reason

    def end_all(self, reason: GatewayError) -> None:
        """End every stream with an error event (a parseable end, not a cut connection)
        and every waiting request with an error answer."""
        for relay in list(self._relays):
            relay.end(reason)


class RelayBody(ResponseBody):
    """Pump upstream bytes through ``translator`` into a bounded channel."""

    def __init__(
        self,
        reply: StreamReply,
        dialect: Dialect,
        *,
        idle_timeout: float,
        streams: StreamRegistry | None = None,
        on_error: Callable[[GatewayError], None] = lambda exc: None,
    ) -> None:
        self._response = reply.response
        self._chunks = reply.chunks
        self._first = reply.first
        self._translator = reply.translator
        # a translator that numbers its events (Responses) ends the stream itself
        self._stream_error = getattr(reply.translator, "fail", dialect.stream_error)
        self._provider = reply.target.provider
        self._idle = idle_timeout
        self._send, self._recv = trio.open_memory_channel[bytes](CHANNEL_SIZE)
        self._nursery_manager = trio.open_nursery()
        self._nursery: trio.Nursery | None = None
        self._waiting_on_client = False
        self._streams = streams
        self._relaying = trio.CancelScope()
        self._ending: GatewayError | None = None
        self._on_error = on_error

    def end(self, reason: GatewayError) -> None:
        """Stop relaying and end the stream with ``reason`` as its error event."""
        self._ending = reason
        self._relaying.cancel()

    async def __aenter__(self) -> Self:
        self._nursery = await self._nursery_manager.__aenter__()
        self._nursery.start_soon(self._pump)
        if self._streams is not None:
            self._streams.add(self)
        return self

    async def __aexit__(  # type: ignore[override]  # the nursery may swallow its own Cancelled
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._nursery is not None
        if self._streams is not None:
            self._streams.discard(self)
        self._nursery.cancel_scope.cancel()
        try:
            return await self._nursery_manager.__aexit__(exc_type, exc, tb)
        finally:
            await _close(self._response)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        """The next chunk for the client: everything queued so far, joined.

        A client slower than its upstream gets fewer, larger writes.
        """
        try:
            first = await self._recv.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        parts = [first]
        while True:
            try:
                parts.append(self._recv.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return first if len(parts) == 1 else b"".join(parts)

    async def _pump(self) -> None:
        # The error boundary of a stream: once the first byte is sent, an error
        # can only be reported in-band, as an error event in the client's format.
        async with self._send:
            try:
                with self._relaying:
                    await self._relay()
                if self._ending is not None:
                    await self._fail(self._ending)
                elif self._translator.error is not None:  # already sent by the translator
                    self._on_error(self._translator.error)
            except GatewayError as exc:
                await self._fail(exc)
            except Exception:
                log.exception("stream relay failed")
                await self._fail(GatewayError())

    async def _relay(self) -> None:
        """Read, translate, queue; one deadline, pushed forward as the stream moves.

        The deadline covers both the upstream read and the hand-over to the
        client writer, so it fires when either side stops moving.
        """
        translator = self._translator
        send_nowait = self._send.send_nowait
        window = self._idle
        step = window / 20  # moving a deadline has a cost: move it at most 20 times a window
        pushed = trio.current_time()
        with trio.CancelScope(deadline=pushed + window) as idle:
            if out := translator.feed(self._first):
                await self._queue(out)
            async with aclosing(self._chunks) as chunks:
                with upstream_errors(self._provider):
                    async for chunk in chunks:
                        if out := translator.feed(chunk):
                            try:
                                send_nowait(out)  # the common case, without a coroutine
                            except trio.WouldBlock:
                                await self._queue(out)
                        if (now := trio.current_time()) - pushed > step:
                            idle.deadline = now + window
                            pushed = now
            if out := translator.close():
                await self._queue(out)
        if not idle.cancelled_caught:
            return
        if self._waiting_on_client:
            log.warning("client stopped reading for %ss; closing its stream", self._idle)
            # Hypercorn shields its socket writes, so the writer may stay blocked
            # until the client reads or goes: release the upstream right now.
            await _close(self._response)
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()
            return
        log.warning("provider %s: stream idle for %ss", self._provider, self._idle)
        raise StreamStalled()

    async def _queue(self, out: bytes) -> None:
        """Hand ``out`` to the client writer; wait (backpressure) only when the channel is full."""
        try:
            self._send.send_nowait(out)
        except trio.WouldBlock:
            self._waiting_on_client = True
            await self._send.send(out)
            self._waiting_on_client = False

    async def _fail(self, exc: GatewayError) -> None:
        """End the stream with ``exc`` as its error event, unless the client is not reading."""
        self._on_error(exc)
        with trio.move_on_after(self._idle):
            await self._send.send(self._stream_error(exc))


async def _close(response: UpstreamResponse) -> None:
    """Close an upstream response, even from a cancelled scope (bounded to 1 s)."""
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        await response.aclose()
