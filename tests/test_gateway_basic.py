"""Same-format proxying through the real gateway to the fake upstream."""

from __future__ import annotations

import httpx
import orjson
import pytest
import trio

from gateway_fixtures import ANTHROPIC_KEY, OPENAI_KEY, gateway_env
from upstream import FakeUpstream, Reply, Status

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = {
    "model": "claude-3-5-haiku-latest",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hello there"}],
}


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway) -> str:  # type: ignore[no-untyped-def]
    return await start_gateway(gateway_env(upstream.url))


async def test_health(gw: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{gw}/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_openai_chat_plain(gw: str, upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{gw}/v1/chat/completions",
            json={**CHAT, "extra_field": 1},
            headers={"authorization": "Bearer client-secret"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: hello there"
    assert r.headers["x-minillm-target"] == "openai:gpt-4o-mini"
    seen = upstream.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert seen.json["extra_field"] == 1  # unknown fields are forwarded unchanged


async def test_anthropic_messages_plain(gw: str, upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{gw}/v1/messages",
            json=MESSAGES,
            headers={"x-api-key": "client-secret", "anthropic-beta": "tools-2024"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "echo: hello there"
    seen = upstream.requests[-1]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == ANTHROPIC_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["anthropic-beta"] == "tools-2024"
    assert "authorization" not in seen.headers


async def test_openai_stream_passthrough(gw: str) -> None:
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", f"{gw}/v1/chat/completions", json={**CHAT, "stream": True}) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = b"".join([c async for c in r.aiter_bytes()])
    events = [e for e in body.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    text = "".join(
        (orjson.loads(e[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for e in events[:-1]
    )
    assert text == "echo: hello there"


async def test_upstream_error_passed_with_status(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(Status(429, headers={"retry-after": "7"}))
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", json=CHAT)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    error = r.json()["error"]  # the provider's own body
    assert (error["code"], error["message"]) == ("rate_limit_exceeded", "fake upstream error 429")


async def test_concurrent_requests(gw: str) -> None:
    results: list[int] = []

    async def one(client: httpx.AsyncClient) -> None:
        r = await client.post(f"{gw}/v1/chat/completions", json=CHAT)
        results.append(r.status_code)

    async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(one, client)
    assert results == [200] * 50


_ = Reply


async def test_anthropic_count_tokens_is_forwarded(gw: str, upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/messages/count_tokens", json=MESSAGES)
        assert r.status_code == 200 and r.json()["input_tokens"] > 0
        assert upstream.requests[-1].path == "/v1/messages/count_tokens"
        r = await client.post(
            f"{gw}/v1/messages/count_tokens", json={**MESSAGES, "model": "gpt-4o"}
        )
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Provider 'openai' does not support count_tokens"
