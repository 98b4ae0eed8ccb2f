"""RelayBody on its own: an upstream body fed over a memory channel, a client task reading
the body as Quart does, time on the autojump clock.

The stream is opened through Gateway.handle over httpx.MockTransport, so the relay gets
what it gets in production; the test plays both the upstream and the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import orjson
import pytest
import trio

# The gateway's public pieces used here; one place to fix when modules move.
from minillm.core.config import Config, ProviderConfig, Target
from minillm.core.dialects import DIALECTS
from minillm.core.errors import (
    GatewayError,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from minillm.core.exchange import Call
from minillm.runtime.gateway import Gateway, StreamReply
from minillm.runtime.providers.http import HTTPProvider
from minillm.server.relay import CHANNEL_SIZE, RelayBody, StreamRegistry

# every test runs on the autojump clock (pytest-trio picks it from the test's own arguments)
pytestmark = pytest.mark.usefixtures("hang_guard")


def event(n: int) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"delta": {"n": n}}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


DONE = b"data: [DONE]\n\n"  # a stream without it (or a finish_reason) is cut short


class Feed(httpx.AsyncByteStream):
    """An upstream body the test writes to: bytes, or an exception to fail with."""

    def __init__(self) -> None:
        self.send, self._recv = trio.open_memory_channel[bytes | Exception](0)
        self.closed = False
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield event(0)  # the first chunk, read before the gateway answers
        async for chunk in self._recv:
            if isinstance(chunk, Exception):
                raise chunk
            self.sent += 1
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


async def open_stream(feed: Feed, resources: AsyncExitStack) -> StreamReply:
    async def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=feed)

    config = ProviderConfig("a", "openai", "http://a.invalid/v1", ("sk-test-alpha-key-0001",))
    gateway = Gateway(
        Config(providers={"a": config}, aliases={"m": (Target("a", "a-model"),)}),
        {"a": HTTPProvider(config, httpx.MockTransport(upstream))},
    )
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    reply = await gateway.handle(Call("openai", "chat", body, {}), resources)
    assert isinstance(reply, StreamReply)
    return reply


class Relay:
    """One relayed stream: its body, what the client read and the errors reported."""

    def __init__(self, reply: StreamReply, idle: float, streams: StreamRegistry | None) -> None:
        self.errors: list[GatewayError] = []
        self.body = RelayBody(
            reply,
            DIALECTS["openai"],
            idle_timeout=idle,
            streams=streams,
            on_error=self.errors.append,
        )
        self.read: list[bytes] = []

    async def client(self) -> None:
        """What Quart does with a response body."""
        async with self.body:
            async for chunk in self.body:
                self.read.append(chunk)

    @property
    def text(self) -> bytes:
        return b"".join(self.read)

    def events(self) -> list[bytes]:
        return [e + b"\n\n" for e in self.text.split(b"\n\n") if e]


async def relay(
    feed: Feed, resources: AsyncExitStack, idle: float = 10.0, streams: StreamRegistry | None = None
) -> Relay:
    return Relay(await open_stream(feed, resources), idle, streams)


async def relayed(*chunks: bytes | Exception) -> tuple[Relay, Feed]:
    """A stream whose upstream sends ``chunks`` (after the first) and ends, read to its end."""
    feed = Feed()
    async with AsyncExitStack() as resources, trio.open_nursery() as nursery:
        r = await relay(feed, resources)
        nursery.start_soon(r.client)
        async with feed.send:
            for chunk in chunks:
                await feed.send.send(chunk)
    return r, feed


async def test_chunks_are_relayed_in_order_and_the_upstream_closed(autojump_clock: object) -> None:
    r, feed = await relayed(event(1), event(2), event(3), DONE)
    assert r.events() == [*(event(n) for n in range(4)), DONE]
    assert r.errors == []
    assert feed.closed


async def test_an_unterminated_last_event_is_flushed_at_the_end(autojump_clock: object) -> None:
    r, _ = await relayed(b"data: [DONE]")  # no blank line after it
    assert r.events() == [event(0), b"data: [DONE]\n\n"]
    assert r.errors == []


async def test_a_slow_client_slows_the_upstream_reads(autojump_clock: object) -> None:
    feed = Feed()
    async with AsyncExitStack() as resources, trio.open_nursery() as nursery:
        r = await relay(feed, resources, idle=10.0)

        async def upstream() -> None:
            async with feed.send:
                for n in range(1, 101):
                    await feed.send.send(event(n))
                await feed.send.send(DONE)

        nursery.start_soon(upstream)
        async with r.body:
            await trio.sleep(1)  # the client reads nothing for a while
            assert feed.sent <= CHANNEL_SIZE + 2
            async for chunk in r.body:
                r.read.append(chunk)
    assert r.events() == [*(event(n) for n in range(101)), DONE]
    assert r.errors == []


async def test_a_client_that_stops_reading_is_cut_off_after_the_idle_timeout(
    autojump_clock: object,
) -> None:
    feed = Feed()
    async with AsyncExitStack() as resources, trio.open_nursery() as nursery:
        r = await relay(feed, resources, idle=5.0)

        async def upstream() -> None:
            for n in range(1, 1000):
                await feed.send.send(event(n))

        nursery.start_soon(upstream)
        start = trio.current_time()
        async with r.body:
            await trio.sleep(60)  # never reads: the relay cancels this
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.5)
        assert feed.closed
        nursery.cancel_scope.cancel()


async def test_an_idle_upstream_ends_the_stream_with_an_error_event(autojump_clock: object) -> None:
    feed = Feed()
    async with AsyncExitStack() as resources:
        r = await relay(feed, resources, idle=5.0)
        start = trio.current_time()
        await r.client()
        assert trio.current_time() - start == pytest.approx(5.0, abs=0.5)
    *data, last = r.events()
    assert data == [event(0)]
    assert orjson.loads(last.removeprefix(b"data: "))["error"]["message"] == (
        "Provider stream stalled"
    )
    assert len(r.errors) == 1 and isinstance(r.errors[0], UpstreamTimeout)
    assert feed.closed


async def test_a_stream_that_keeps_moving_outlives_the_idle_timeout(autojump_clock: object) -> None:
    feed = Feed()
    async with AsyncExitStack() as resources, trio.open_nursery() as nursery:
        r = await relay(feed, resources, idle=5.0)
        nursery.start_soon(r.client)
        async with feed.send:
            for n in range(1, 21):
                await trio.sleep(1)
                await feed.send.send(event(n))
            await feed.send.send(DONE)
    assert r.events() == [*(event(n) for n in range(21)), DONE]
    assert r.errors == []


async def test_an_upstream_failure_becomes_the_last_event(autojump_clock: object) -> None:
    torn = event(1) + b'data: {"half'  # the torn event is never sent
    r, _ = await relayed(torn, httpx.ReadError("connection reset"))
    *data, last = r.events()
    assert data == [event(0), event(1)]
    error = orjson.loads(last.removeprefix(b"data: "))["error"]
    assert error["message"] == "Provider unavailable"
    assert b"reset" not in last
    assert len(r.errors) == 1 and isinstance(r.errors[0], UpstreamUnavailable)


async def test_an_upstream_error_event_is_relayed_and_reported(autojump_clock: object) -> None:
    upstream_error = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    r, _ = await relayed(upstream_error)
    assert r.events() == [event(0), upstream_error]  # no second error event of our own
    assert len(r.errors) == 1 and isinstance(r.errors[0], UpstreamHTTPError)


async def test_a_client_disconnect_closes_the_upstream_at_once(autojump_clock: object) -> None:
    feed = Feed()
    async with AsyncExitStack() as resources:
        r = await relay(feed, resources, idle=60.0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(r.client)
            await feed.send.send(event(1))
            await trio.sleep(1)
            start = trio.current_time()
            nursery.cancel_scope.cancel()  # the client went away: its task is cancelled
        assert feed.closed  # by the relay, before the request's resources close
        assert trio.current_time() == start
    assert r.errors == []


async def test_a_shutdown_ends_every_stream_with_an_error_event(autojump_clock: object) -> None:
    feed = Feed()
    streams = StreamRegistry()
    async with AsyncExitStack() as resources, trio.open_nursery() as nursery:
        r = await relay(feed, resources, streams=streams)
        nursery.start_soon(r.client)
        await trio.sleep(1)
        assert len(streams) == 1
        streams.end_all(UpstreamUnavailable("The gateway is shutting down"))
    assert len(streams) == 0
    *_, last = r.events()
    assert orjson.loads(last.removeprefix(b"data: "))["error"]["message"] == (
        "The gateway is shutting down"
    )
    assert len(r.errors) == 1
    assert feed.closed
