"""Hypercorn's Trio writes, straight to the socket when one write sends it all
(minillm.server.fastsend): installed by both entry points; partial writes, full
buffers, errors and busy locks go through Hypercorn's own path, nothing lost."""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio.testing
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.tcp_server import TCPServer

import minillm.app
from gateway_fixtures import gateway_env
from minillm.core.config import Config
from minillm.server import fastsend
from upstream import FakeUpstream, Reply

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
BIG = bytes(range(256)) * 8192  # 2 MiB: more than a small socket buffer pair holds


@pytest.fixture
def sent_by_hypercorn(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """Every event that went through Hypercorn's own ``protocol_send`` (still called)."""
    fastsend.install()
    events: list[Event] = []
    hypercorn_send = fastsend._hypercorn_protocol_send

    async def spy(server: TCPServer, event: Event) -> None:
        events.append(event)
        await hypercorn_send(server, event)

    monkeypatch.setattr(fastsend, "_hypercorn_protocol_send", spy)
    return events


@pytest.fixture
def pristine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hypercorn as shipped, as in a new process; restored after the test."""
    monkeypatch.setattr(TCPServer, "protocol_send", fastsend._hypercorn_protocol_send)
    fastsend.install.cache_clear()
    assert not fastsend.installed()
    yield
    fastsend.install.cache_clear()


class _Protocol:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def handle(self, event: Event) -> None:
        self.events.append(event)


def _server(stream: Any) -> tuple[TCPServer, _Protocol]:
    server = TCPServer(None, HypercornConfig(), None, None, stream)  # type: ignore[arg-type]
    server.protocol = protocol = _Protocol()  # type: ignore[assignment]
    return server, protocol


@dataclass
class Link:
    """A Hypercorn TCPServer writing to ``peer`` through a pair with small buffers."""

    server: TCPServer
    protocol: _Protocol
    ours: trio.SocketStream
    peer: trio.SocketStream

    async def read(self, size: int, into: bytearray) -> None:
        while len(into) < size:
            into += await self.peer.receive_some(65536)


@pytest.fixture
def link() -> Link:
    a, b = trio.socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours = trio.SocketStream(a)
    server, protocol = _server(ours)
    return Link(server, protocol, ours, trio.SocketStream(b))


async def test_a_write_that_fits_goes_straight_to_the_socket(
    link: Link, sent_by_hypercorn: list[Event]
) -> None:
    with trio.testing.assert_no_checkpoints():
        await link.server.protocol_send(RawData(b"data: 1\n\n"))
    assert await link.peer.receive_some() == b"data: 1\n\n"
    assert sent_by_hypercorn == []


async def test_a_partial_write_sends_the_rest_through_hypercorn(
    link: Link, sent_by_hypercorn: list[Event]
) -> None:
    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.read, len(BIG), received)
        await link.server.protocol_send(RawData(BIG))
    assert received == BIG
    [rest] = sent_by_hypercorn
    assert isinstance(rest, RawData) and 0 < len(rest.data) < len(BIG)
    assert BIG.endswith(rest.data)
    assert link.protocol.events == []


async def test_a_busy_lock_or_a_full_buffer_sends_all_through_hypercorn(
    link: Link, sent_by_hypercorn: list[Event]
) -> None:
    """A write waiting for the lock comes after the one holding it, never before."""
    received = bytearray()
    async with trio.open_nursery() as nursery:
        async with link.server.send_lock:
            nursery.start_soon(link.server.protocol_send, RawData(b"second"))
            await trio.testing.wait_all_tasks_blocked()
            assert sent_by_hypercorn == [RawData(b"second")]
            await link.ours.send_all(b"first")
        nursery.start_soon(link.read, len(b"firstsecond"), received)
    assert received == b"firstsecond"

    with pytest.raises(BlockingIOError):  # fill both buffers
        while True:
            os.write(link.ours.socket.fileno(), b"x" * 65536)
    sent_by_hypercorn.clear()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.server.protocol_send, RawData(b"last"))
        await trio.testing.wait_all_tasks_blocked()
        assert sent_by_hypercorn == [RawData(b"last")]  # waiting for the reader
        received.clear()
        while not received.endswith(b"last"):
            received += await link.peer.receive_some(65536)


@pytest.mark.parametrize("gone", ["peer", "ours"])
async def test_a_closed_connection_is_reported_by_hypercorn(
    link: Link, sent_by_hypercorn: list[Event], gone: str
) -> None:
    await getattr(link, gone).aclose()
    await link.server.protocol_send(RawData(b"data: 1\n\n"))
    assert sent_by_hypercorn == [RawData(b"data: 1\n\n")]
    assert link.protocol.events == [Closed()]


async def test_other_streams_and_events_keep_hypercorns_path(
    sent_by_hypercorn: list[Event],
) -> None:
    """TLS streams (here: any stream that is not a plain SocketStream) are left alone."""
    stream = trio.testing.MemorySendStream()
    server, _ = _server(stream)
    await server.protocol_send(RawData(b"data: 1\n\n"))
    assert sent_by_hypercorn == [RawData(b"data: 1\n\n")]
    assert stream.get_data_nowait() == b"data: 1\n\n"


async def test_minillm_serve_installs_it(
    pristine: None, upstream: FakeUpstream, start_gateway: Callable[..., Awaitable[str]]
) -> None:
    await start_gateway(gateway_env(upstream.url))
    assert fastsend.installed()


def test_the_hypercorn_factory_installs_it(pristine: None) -> None:
    minillm.app.create_app(Config.load({"MINI_LLM_USAGE_DB": "off"}))
    assert fastsend.installed()


def test_another_hypercorn_is_left_as_is_and_said_once(
    pristine: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def init(self: TCPServer, *args: object) -> None:  # a version without send_lock
        self.stream = args[-1]  # type: ignore[assignment]

    monkeypatch.setattr(TCPServer, "__init__", init)
    with caplog.at_level(logging.DEBUG, logger="minillm.server"):
        fastsend.install()
        fastsend.install()
    assert not fastsend.installed()
    assert [r.getMessage() for r in caplog.records] == [
        "hypercorn's write path is left as is: hypercorn's TCPServer sets no send_lock"
    ]


def _text(n: int) -> str:
    return "".join(f"{i:05d}{'x' * 2000} " for i in range(n))  # ~4 MiB of SSE in all


async def test_a_slow_reader_gets_a_large_stream_intact(
    upstream: FakeUpstream,
    start_gateway: Callable[..., Awaitable[str]],
    sent_by_hypercorn: list[Event],
) -> None:
    gw = await start_gateway(gateway_env(upstream.url))
    text = _text(2000)
    upstream.push(Reply(text=text))
    small = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)]
    transport = httpx.AsyncHTTPTransport(socket_options=small)
    async with (
        httpx.AsyncClient(transport=transport, timeout=30) as client,
        client.stream("POST", f"{gw}/v1/chat/completions", json={**CHAT, "stream": True}) as r,
    ):
        assert r.status_code == 200
        body = bytearray()
        async for chunk in r.aiter_raw(16384):
            body += chunk
            await trio.sleep(0.001)
    events = bytes(body).split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    chunks = [orjson.loads(e.removeprefix(b"data: ")) for e in events[:-2]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == text
    assert any(isinstance(e, RawData) for e in sent_by_hypercorn)  # some writes were cut


async def test_a_client_gone_mid_write_frees_the_upstream(
    upstream: FakeUpstream, start_gateway: Callable[..., Awaitable[str]]
) -> None:
    """A reset while the gateway waits to write the rest: the upstream is closed,
    the gateway serves on."""
    gw = await start_gateway(gateway_env(upstream.url))
    upstream.push(Reply(text=_text(2000)))
    port = int(gw.rsplit(":", 1)[1])
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    body = orjson.dumps({**CHAT, "stream": True})
    await sock.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert (await sock.recv(4096)).startswith(b"HTTP/1.1 200")
    got = 0
    while got < 100_000:
        got += len(await sock.recv(4096))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset, not a clean end
    await upstream.wait_disconnect(timeout=5)
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"{gw}/v1/chat/completions", json=CHAT)).status_code == 200
