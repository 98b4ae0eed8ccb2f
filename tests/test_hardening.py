"""Bad input, hostile sizes, failing and hanging upstreams: clear errors, no leaks."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import trio

from gateway_fixtures import OPENAI_KEY, gateway_env
from upstream import DropAfter, FakeUpstream, Hang, Reply, SlowStream, StallAfter, Status

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {
    "model": "claude-3-5-haiku-latest",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


def assert_openai_error(r: httpx.Response, status: int) -> dict[str, str]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert "type" in error
    return error  # type: ignore[no-any-return]


def assert_anthropic_error(r: httpx.Response, status: int) -> dict[str, str]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error"
    return body["error"]  # type: ignore[no-any-return]


def assert_no_leak(text: str, upstream_url: str = "") -> None:
    for secret in (OPENAI_KEY, "Traceback", "httpx", "Errno"):
        assert secret not in text
    if upstream_url:
        assert upstream_url.split("//")[1] not in text  # host:port


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway) -> str:  # type: ignore[no-untyped-def]
    return await start_gateway(
        gateway_env(upstream.url, MINI_LLM_MAX_BODY_BYTES="4096"),
        request_timeout=1.0,
        stream_idle_timeout=0.5,
    )


async def test_declared_body_over_limit_is_413(gw: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", content=b"x" * 5000)
        assert_openai_error(r, 413)
        r = await client.post(f"{gw}/v1/messages", content=b"x" * 5000)
        assert assert_anthropic_error(r, 413)["type"] == "request_too_large"


async def test_chunked_body_over_limit_is_413(gw: str, upstream: FakeUpstream) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1000

    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", content=body())
    assert_openai_error(r, 413)
    assert upstream.requests == []


async def test_chunked_body_under_limit_is_read(gw: str) -> None:
    payload = orjson.dumps(CHAT)

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 7):
            yield payload[i : i + 7]

    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", content=body())
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "not valid JSON"),
        (orjson.dumps({"messages": []}), "model"),
        (orjson.dumps({**CHAT, "model": ""}), "model"),
        (orjson.dumps({**CHAT, "model": "m" * 101}), "100"),
        (orjson.dumps({**CHAT, "model": 42}), "model"),
        (orjson.dumps({**CHAT, "model": "gpt\n4"}), "control"),
    ],
)
async def test_bad_requests_are_400(gw: str, content: bytes, message: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", content=content)
        assert message in assert_openai_error(r, 400)["message"]
        r = await client.post(f"{gw}/anthropic/v1/messages", content=content)
        assert message in assert_anthropic_error(r, 400)["message"]
        assert (await client.get(f"{gw}/health")).status_code == 200  # still serving


async def test_unknown_path_and_wrong_method(gw: str) -> None:
    async with httpx.AsyncClient() as client:
        assert_openai_error(await client.get(f"{gw}/v1/nope"), 404)
        assert_openai_error(await client.get(f"{gw}/v1/chat/completions"), 405)
        assert_anthropic_error(await client.get(f"{gw}/v1/messages"), 405)
        assert_anthropic_error(await client.post(f"{gw}/anthropic/v1/nope"), 404)


async def test_every_prefix_routes(gw: str, upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient() as client:
        for prefix in ("", "/openai", "/anthropic"):
            r = await client.post(f"{gw}{prefix}/v1/chat/completions", json=CHAT)
            assert r.status_code == 200, (prefix, r.text)
            r = await client.post(f"{gw}{prefix}/v1/messages", json=MESSAGES)
            assert r.status_code == 200, (prefix, r.text)
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions", "/v1/messages"] * 3


async def test_connection_refused_is_502_without_details(start_gateway) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    gw = await start_gateway(gateway_env(dead))
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", json=CHAT)
        assert assert_openai_error(r, 502)["message"] == "Provider unavailable"
        assert_no_leak(r.text, dead)
        r = await client.post(f"{gw}/v1/messages", json={**MESSAGES, "stream": True})
        assert assert_anthropic_error(r, 502)["message"] == "Provider unavailable"
        assert_no_leak(r.text, dead)


async def test_hanging_upstream_is_504_within_deadline(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(Hang(), Hang())
    async with httpx.AsyncClient(timeout=10) as client:
        started = trio.current_time()
        r = await client.post(f"{gw}/v1/chat/completions", json=CHAT)
        assert_openai_error(r, 504)
        r = await client.post(f"{gw}/v1/messages", json={**MESSAGES, "stream": True})
        assert_anthropic_error(r, 504)
        assert trio.current_time() - started < 4


async def test_upstream_error_is_scrubbed_of_key(gw: str, upstream: FakeUpstream) -> None:
    leaky = {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}", "type": "x"}}
    upstream.push(Status(401, body=leaky))
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", json=CHAT)
    assert_openai_error(r, 401)
    assert_no_leak(r.text)


async def read_events(response: httpx.Response) -> list[bytes]:
    body = b"".join([c async for c in response.aiter_bytes()])
    return [e for e in body.split(b"\n\n") if e]


@pytest.mark.parametrize("failure", [StallAfter(2), DropAfter(2)])
async def test_mid_stream_failure_ends_with_error_event(
    gw: str, upstream: FakeUpstream, failure: object
) -> None:
    upstream.push(failure)  # type: ignore[arg-type]
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", f"{gw}/v1/chat/completions", json={**CHAT, "stream": True}) as r,
    ):
        assert r.status_code == 200
        events = await read_events(r)
    assert events[-1].startswith(b'data: {"error"')
    assert b"[DONE]" not in events[-1]
    assert_no_leak(events[-1].decode())


async def test_client_disconnect_closes_upstream(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(SlowStream(chunks=200, interval=0.02))
    async with httpx.AsyncClient() as client:
        async with client.stream(
            "POST", f"{gw}/v1/messages", json={**MESSAGES, "stream": True}
        ) as r:
            assert r.status_code == 200
            seen = 0
            async for _ in r.aiter_bytes():
                seen += 1
                if seen >= 3:
                    break
        gone = trio.current_time()
    assert await upstream.wait_disconnect(timeout=2.0) - gone < 1.0


async def test_missing_provider_key_names_the_provider(
    start_gateway, upstream: FakeUpstream
) -> None:  # type: ignore[no-untyped-def]
    env = {"OPENAI_API_KEY": OPENAI_KEY}  # anthropic at its default URL, without a key
    gw = await start_gateway(env)
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/messages", json=MESSAGES)
    error = assert_anthropic_error(r, 503)
    assert "anthropic" in error["message"]


async def test_keys_round_robin_and_alias(start_gateway, upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    env = gateway_env(
        upstream.url,
        OPENAI_API_KEYS="k-one,k-two",
        MINI_LLM_MODEL_ALIASES='{"fast": "openai:gpt-4.1-nano"}',
    )
    gw = await start_gateway(env)
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            r = await client.post(f"{gw}/v1/chat/completions", json={**CHAT, "model": "fast"})
            assert r.status_code == 200
        models = (await client.get(f"{gw}/v1/models")).json()
    assert [r.headers["authorization"] for r in upstream.requests] == [
        "Bearer k-one",
        "Bearer k-two",
        "Bearer k-one",
    ]
    assert {r.json["model"] for r in upstream.requests} == {"gpt-4.1-nano"}
    assert models["data"][0]["id"] == "fast"
    assert models["data"][0]["targets"] == ["openai:gpt-4.1-nano"]


async def test_embeddings_passthrough(gw: str, upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{gw}/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b"]}
        )
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2
    assert upstream.requests[-1].path == "/v1/embeddings"


async def test_one_timeout_bounds_hangs_and_stalls(start_gateway, upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    """With only MINI_LLM_REQUEST_TIMEOUT set, a stalled stream also ends within it."""
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_REQUEST_TIMEOUT="1"))
    upstream.push(StallAfter(2))
    started = trio.current_time()
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", f"{gw}/v1/messages", json={**MESSAGES, "stream": True}) as r,
    ):
        events = await read_events(r)
    assert events[-1].startswith(b"event: error")
    assert trio.current_time() - started < 3


async def test_client_that_stops_reading_releases_the_upstream(
    start_gateway,
    upstream: FakeUpstream,  # type: ignore[no-untyped-def]
) -> None:
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_STREAM_IDLE_TIMEOUT="0.5"))
    upstream.push(Reply(text="word " * 120_000))  # ~20 MB of SSE: more than socket buffers hold
    port = int(gw.rsplit(":", 1)[1])
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    body = orjson.dumps({**CHAT, "stream": True})
    await stream.send_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert (await stream.receive_some(4096)).startswith(b"HTTP/1.1 200")
    # ...and never read again: the gateway must give up on the stream and free the upstream
    await upstream.wait_disconnect(timeout=10)
    async with httpx.AsyncClient() as client:  # still serving others
        assert (await client.post(f"{gw}/v1/chat/completions", json=CHAT)).status_code == 200
    await stream.aclose()
