"""The upstream HTTP/1.1 transport (``runtime/providers/h1.py``) against raw servers on 127.0.0.1.

Each test scripts a server byte for byte (``Server`` runs one script per accepted
connection) and checks what the transport did: which connections it opened, reused or
closed, what it raised, and that its counts of open and idle connections stay right.
Closing a client's stream mid-way through the gateway is covered in
``test_hardening.py::test_client_disconnect_closes_upstream``.
"""

from __future__ import annotations

import ssl

import httpx
import pytest
import trio
import trustme

from minillm.runtime.providers.h1 import H1Transport
from raw_server import Peer, Script, Server, answer, keep_alive, until_eof


def transport(**limits: float | None) -> H1Transport:
    return H1Transport(ssl.create_default_context(), httpx.Limits(**limits))  # type: ignore[arg-type]


def assert_counts(t: H1Transport, open_: int, idle: int) -> None:
    assert (t.open_connections, t.idle_connections) == (open_, idle)


async def test_sequential_requests_share_one_connection(nursery: trio.Nursery) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer(b"hello", b"201 Made Up", b"x-a: 1\r\n"))
        await peer.request()
        chunked = b"transfer-encoding: chunked\r\n\r\n5\r\nworld\r\n1\r\n!\r\n0\r\n\r\n"
        await peer.send(b"HTTP/1.1 200 OK\r\n" + chunked)
        await peer.request()

    server = await Server(script).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t) as client:
        first = await client.post(server.url + "a?b=1", content=b"ping")
        assert (first.status_code, first.reason_phrase, first.content) == (201, "Made Up", b"hello")
        assert first.headers["x-a"] == "1"
        assert first.http_version == "HTTP/1.1"
        assert_counts(t, 1, 1)
        async with client.stream("GET", server.url + "c") as second:
            assert_counts(t, 1, 0)
            assert [part async for part in second.aiter_raw()] == [b"world", b"!"]
        assert_counts(t, 1, 1)
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /a?b=1 HTTP/1.1\r\n")
    assert server.requests[0].endswith(b"\r\n\r\nping")
    assert server.requests[1].startswith(b"GET /c HTTP/1.1\r\n")


async def test_head_204_and_1xx_are_framed_without_waiting(nursery: trio.Nursery) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")  # HEAD: no body
        await peer.request()
        await peer.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        await peer.request()
        await peer.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n")
        await peer.send(answer(b"after"))
        await until_eof(peer)

    server = await Server(script).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t, timeout=2) as client:
        head = await client.head(server.url)
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "100")
        assert (await client.delete(server.url)).status_code == 204
        final = await client.post(server.url, content=b"x", headers={"expect": "100-continue"})
        assert (final.status_code, final.content) == (200, b"after")
    assert server.connections == 1


async def test_connection_close_answers_are_not_kept(nursery: trio.Nursery) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer(headers=b"connection: close\r\n"))

    server = await Server(script).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t) as client:
        for _ in range(2):
            assert (await client.get(server.url)).content == b"hi"
            assert_counts(t, 0, 0)
    assert server.connections == 2


async def test_a_body_closed_early_closes_its_connection(nursery: trio.Nursery) -> None:
    async def script(peer: Peer) -> None:
        while await peer.request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 10)

    server = await Server(script).start(nursery)
    t = transport(max_connections=1)
    async with httpx.AsyncClient(transport=t) as client:
        for done in range(1, 3):  # the second would wait for a slot if the first leaked it
            async with client.stream("GET", server.url) as r:
                assert await r.aiter_raw().__anext__() == b"x" * 10
            assert_counts(t, 0, 0)
            await server.wait_eofs(done)
    assert server.connections == 2


async def test_an_idle_connection_closed_by_the_server_is_not_a_failure(
    nursery: trio.Nursery,
) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer())  # keep-alive, then closed at once

    server = await Server(script).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t) as client:
        assert (await client.get(server.url)).content == b"hi"
        await trio.sleep(0.05)  # the server's FIN arrives
        assert (await client.get(server.url)).content == b"hi"
    assert (server.connections, len(server.requests)) == (2, 2)


def answer_first_only(also_first_of: int) -> Script:
    """Answer the first request on connections up to ``also_first_of``; close on any other
    after reading it (the keep-alive race, every time)."""

    async def script(peer: Peer) -> None:
        while await peer.request() is not None:
            if peer.served > 1 or peer.index > also_first_of:
                return
            await peer.send(answer())

    return script


async def open_two_idle(client: httpx.AsyncClient, url: str) -> None:
    """Two requests at once, so that two connections end up idle."""
    first = await client.send(client.build_request("GET", url), stream=True)
    second = await client.send(client.build_request("GET", url), stream=True)
    await first.aread()
    await second.aread()


async def test_a_reused_connection_closed_before_answering_is_retried_on_a_new_one(
    nursery: trio.Nursery,
) -> None:
    server = await Server(answer_first_only(3)).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t) as client:
        await open_two_idle(client, server.url)
        assert_counts(t, 2, 2)
        assert (await client.get(server.url)).content == b"hi"
        assert_counts(t, 2, 2)  # the closed one is gone, the new one is kept
    assert (server.connections, len(server.requests)) == (3, 4)


async def test_the_keep_alive_retry_is_made_once(nursery: trio.Nursery) -> None:
    server = await Server(answer_first_only(1)).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t) as client:
        await client.get(server.url)
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)  # reused: closed; retried on a new one: closed too
        assert_counts(t, 0, 0)
    assert (server.connections, len(server.requests)) == (2, 3)


@pytest.mark.parametrize(
    "broken", [b"HTTP/1.1 two hundred OK\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-"]
)
async def test_a_broken_answer_on_a_reused_connection_is_not_retried(
    nursery: trio.Nursery, broken: bytes
) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(answer())
        await peer.request()
        await peer.send(broken)  # the server has started answering: sending again is unsafe

    server = await Server(script).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t) as client:
        await client.get(server.url)
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.url, content=b"charge me once")
        assert_counts(t, 0, 0)
    assert (server.connections, len(server.requests)) == (1, 2)


async def refuse_early(peer: Peer) -> None:
    """Answer 413 on the request's head, without reading its body, and close."""
    while b"\r\n\r\n" not in await peer.stream.receive_some(65536):
        pass
    await peer.send(answer(b"too large", b"413 Payload Too Large", b"connection: close\r\n"))


async def test_an_answer_before_the_whole_request_is_returned_though_the_write_failed(
    nursery: trio.Nursery,
) -> None:
    server = await Server(refuse_early).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t) as client:
        response = await client.post(server.url, content=b"x" * (32 << 20))
    assert (response.status_code, response.content) == (413, b"too large")
    assert_counts(t, 0, 0)


async def test_max_connections_queues_requests_and_the_pool_timeout_ends_the_wait(
    nursery: trio.Nursery,
) -> None:
    server = await Server(keep_alive).start(nursery)
    t = transport(max_connections=2)
    async with httpx.AsyncClient(transport=t) as client:
        busy = [await client.send(client.build_request("GET", server.url), stream=True)]
        busy.append(await client.send(client.build_request("GET", server.url), stream=True))
        with pytest.raises(httpx.PoolTimeout):
            await client.get(server.url, timeout=httpx.Timeout(None, pool=0.05))
        third: list[httpx.Response] = []

        async def wait_for_a_slot() -> None:
            third.append(await client.get(server.url))

        nursery.start_soon(wait_for_a_slot)
        await trio.sleep(0.1)
        assert third == []
        await busy[0].aread()
        with trio.fail_after(1):
            while not third:
                await trio.sleep(0.005)
        assert third[0].content == b"hi"
        await busy[1].aread()
        assert_counts(t, 2, 2)
    assert server.connections == 2


async def test_closing_the_transport_ends_the_wait_for_a_slot(nursery: trio.Nursery) -> None:
    server = await Server(keep_alive).start(nursery)
    t = transport(max_connections=1)
    async with httpx.AsyncClient(transport=t) as client:
        busy = await client.send(client.build_request("GET", server.url), stream=True)
        failed: list[BaseException] = []

        async def wait_for_a_slot() -> None:
            try:
                await client.get(server.url)
            except RuntimeError as exc:
                failed.append(exc)

        nursery.start_soon(wait_for_a_slot)
        await trio.sleep(0.05)
        await t.aclose()
        with trio.fail_after(1):
            while not failed:
                await trio.sleep(0.005)
        await busy.aclose()
    assert "closed" in str(failed[0])
    assert_counts(t, 0, 0)


async def test_max_keepalive_connections_bounds_the_idle_ones(nursery: trio.Nursery) -> None:
    server = await Server(keep_alive).start(nursery)
    t = transport(max_keepalive_connections=1)
    async with httpx.AsyncClient(transport=t) as client:
        await open_two_idle(client, server.url)
        assert_counts(t, 1, 1)
        await server.wait_eofs(1)


async def test_idle_connections_expire(nursery: trio.Nursery) -> None:
    server = await Server(keep_alive).start(nursery)
    t = transport(keepalive_expiry=0.2)
    async with httpx.AsyncClient(transport=t) as client:
        await client.get(server.url)
        await client.get(server.url)  # within the expiry: reused
        assert server.connections == 1
        await trio.sleep(0.3)
        await client.get(server.url)
        assert_counts(t, 1, 1)
        await server.wait_eofs(1)
    assert server.connections == 2


async def cut_mid_body(peer: Peer) -> None:
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)


async def stall_mid_body(peer: Peer) -> None:
    await peer.request()
    await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
    await until_eof(peer)


async def reset_mid_body(peer: Peer) -> None:
    await cut_mid_body(peer)
    await trio.sleep(0.05)
    peer.reset()


async def malformed(peer: Peer) -> None:
    await peer.request()
    await peer.send(b"HTTP/1.1 two hundred OK\r\n\r\n")
    await until_eof(peer)


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (None, httpx.ConnectError),
        (until_eof, httpx.ReadTimeout),
        (cut_mid_body, httpx.RemoteProtocolError),
        (reset_mid_body, httpx.ReadError),
        (malformed, httpx.RemoteProtocolError),
    ],
)
async def test_errors_are_httpx_errors_and_free_the_connection(
    nursery: trio.Nursery, script: Script | None, error: type[httpx.HTTPError]
) -> None:
    if script is None:  # a port nobody listens on
        with trio.socket.socket() as sock:
            await sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    else:
        url = (await Server(script).start(nursery)).url
    good = await Server(keep_alive).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t, timeout=httpx.Timeout(None, read=0.2)) as client:
        with pytest.raises(error):
            await client.get(url)
        assert_counts(t, 0, 0)
        assert (await client.get(good.url)).content == b"hi"
        assert_counts(t, 1, 1)


async def test_cancelling_a_request_closes_its_connection(nursery: trio.Nursery) -> None:
    server = await Server(until_eof).start(nursery)
    t = transport(max_connections=1)
    async with httpx.AsyncClient(transport=t) as client:
        with trio.move_on_after(0.1):
            await client.get(server.url)
        assert_counts(t, 0, 0)
        await server.wait_eofs(1)


async def test_a_failed_or_cancelled_body_read_closes_its_connection(
    nursery: trio.Nursery,
) -> None:
    async def script(peer: Peer) -> None:
        await (cut_mid_body if peer.index == 1 else stall_mid_body)(peer)

    server = await Server(script).start(nursery)
    t = transport()
    async with httpx.AsyncClient(transport=t) as client:
        async with client.stream("GET", server.url) as cut:
            with pytest.raises(httpx.RemoteProtocolError):
                async for _ in cut.aiter_raw():
                    pass
            assert_counts(t, 0, 0)  # at once, not only when the response is closed
        async with client.stream("GET", server.url) as stalled:
            with trio.move_on_after(0.1):
                async for _ in stalled.aiter_raw():
                    pass
            assert_counts(t, 0, 0)
            await server.wait_eofs(1)


async def test_tls_with_alpn_and_reuse(nursery: trio.Nursery) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    server_tls.set_alpn_protocols(["h2", "http/1.1"])
    alpn: list[str | None] = []

    async def script(peer: Peer) -> None:
        while await peer.request() is not None:
            assert isinstance(peer.stream, trio.SSLStream)
            alpn.append(peer.stream.selected_alpn_protocol())
            await peer.send(answer(b"secret"))

    server = await Server(script, server_tls).start(nursery)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    t = H1Transport(client_tls, httpx.Limits())
    async with httpx.AsyncClient(transport=t) as client:
        for _ in range(2):
            assert (await client.get(server.url)).content == b"secret"
        assert_counts(t, 1, 1)
    async with httpx.AsyncClient(transport=transport()) as stranger:
        with pytest.raises(httpx.ConnectError):  # a CA it does not trust
            await stranger.get(server.url)
    assert (server.connections, alpn) == (2, ["http/1.1", "http/1.1"])
