"""Edge cases from review: odd ``stream`` values, deep JSON, garbage 200 answers, 413 on a
kept-alive connection, control characters in the access log, who answered an error."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from gateway_fixtures import gateway_env
from test_hardening import assert_anthropic_error, assert_openai_error
from test_metrics import scrape, value, wait_idle
from test_usage import rows
from upstream import FakeUpstream, Raw, Status

MSG = [{"role": "user", "content": "hi"}]
CALLS: dict[str, tuple[str, dict[str, Any]]] = {  # client API -> (path, body without model)
    "openai": ("/v1/chat/completions", {"messages": MSG}),
    "anthropic": ("/v1/messages", {"max_tokens": 5, "messages": MSG}),
    "responses": ("/v1/responses", {"input": "hi"}),
}
GARBAGE = Raw(200, b"<html>oops</html>", "text/html")


def error_of(api: str, r: httpx.Response, status: int) -> dict[str, str]:
    if api == "anthropic":
        return assert_anthropic_error(r, status)
    return assert_openai_error(r, status)


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway) -> str:  # type: ignore[no-untyped-def]
    env = gateway_env(
        upstream.url,
        MINI_LLM_PROVIDER_OAI_URL=f"{upstream.url}/v1",
        MINI_LLM_BREAKER_FAILURES="2",
        MINI_LLM_USAGE_DB="off",
    )
    return await start_gateway(env)


@pytest.mark.parametrize("api", CALLS)
@pytest.mark.parametrize("model", ["oai:ok", "claude-3-5-haiku"])
@pytest.mark.parametrize("stream", ["yes", 1, 0, "false", {}])
async def test_stream_must_be_a_boolean(
    gw: str, upstream: FakeUpstream, api: str, model: str, stream: object
) -> None:
    path, body = CALLS[api]
    async with httpx.AsyncClient() as client:
        r = await client.post(gw + path, json={**body, "model": model, "stream": stream})
    assert "'stream' must be a boolean" in error_of(api, r, 400)["message"]
    assert upstream.requests == []


async def test_stream_null_is_a_plain_call(gw: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/messages", json={**CALLS["anthropic"][1], "model": "oai:m",
                                                          "stream": None})  # fmt: skip
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("api", CALLS)
async def test_garbage_answers_never_open_the_breaker(
    gw: str, upstream: FakeUpstream, api: str
) -> None:
    """An answer that is not JSON (translated, or passed through) is a 502 and retried
    like a 5xx, but the provider did answer: the breaker stays closed."""
    path, body = CALLS[api]
    async with httpx.AsyncClient() as client:
        for model in ("oai:m", "claude-3-5-haiku"):  # through translation, then passthrough
            for _ in range(3):
                upstream.push(GARBAGE, GARBAGE, GARBAGE)
                r = await client.post(gw + path, json={**body, "model": model})
                assert error_of(api, r, 502)["message"] == "Provider unavailable"
            upstream.push(GARBAGE)  # once: the retry is answered
            r = await client.post(gw + path, json={**body, "model": model})
            assert r.status_code == 200, r.text
        health = (await client.get(f"{gw}/health/providers")).json()["providers"]
    assert {health[p]["breaker"] for p in ("oai", "anthropic")} == {"closed"}
    assert len(upstream.requests) == 2 * (3 * 3 + 2)
    s = await scrape(gw)
    assert value(s, "minillm_upstream_attempts_total", provider="oai", outcome="bad_answer") == 10


@pytest.mark.parametrize(
    "answer",
    [GARBAGE, Raw(200, b""), Raw(200, b"[1]"), Raw(200, b'{"id": 1')],
)
async def test_passthrough_checks_a_json_answer_is_an_object(
    gw: str, upstream: FakeUpstream, answer: Raw
) -> None:
    upstream.push(*[answer] * 3)
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", json={"model": "oai:m", "messages": MSG})
    assert_openai_error(r, 502)
    assert "oops" not in r.text


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


DEEP_TOOLS = {  # a 300-level tool schema, in each API's shape
    "openai": {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": nested(150)}}]
    },
    "anthropic": {"tools": [{"name": "f", "input_schema": nested(150)}]},
    "responses": {"tools": [{"type": "function", "name": "f", "parameters": nested(150)}]},
}


@pytest.mark.parametrize("api", CALLS)
@pytest.mark.parametrize("model", ["oai:m", "claude-3-5-haiku"])
async def test_json_nested_too_deep_is_400(
    gw: str, upstream: FakeUpstream, api: str, model: str
) -> None:
    path, body = CALLS[api]
    async with httpx.AsyncClient() as client:
        r = await client.post(gw + path, json={**body, **DEEP_TOOLS[api], "model": model})
    assert "nested too deeply" in error_of(api, r, 400)["message"]
    assert upstream.requests == []


async def test_413_says_the_connection_closes(upstream: FakeUpstream, start_gateway) -> None:  # type: ignore[no-untyped-def]
    """The body is not read to its end, so the server closes the connection: it says so."""
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_MAX_BODY_BYTES="4096"))
    host, port = gw.removeprefix("http://").split(":")
    for declared, sent in ((5000, 100), (500_000, 4000)):
        stream = await trio.open_tcp_stream(host, int(port))
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {declared}\r\n\r\n"
        )
        await stream.send_all(head.encode() + b"x" * sent)
        answer = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some():
                answer += chunk
        status_line, *headers = answer.split(b"\r\n\r\n")[0].lower().split(b"\r\n")
        assert status_line.startswith(b"http/1.1 413")
        assert b"connection: close" in headers
    async with httpx.AsyncClient() as client:  # so httpx opens a new one for the next request
        for _ in range(3):
            r = await client.post(f"{gw}/v1/chat/completions", content=b"x" * 500_000)
            assert_openai_error(r, 413)
            r = await client.post(
                f"{gw}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MSG}
            )
            assert r.status_code == 200, r.text


async def test_access_log_lines_stay_one_line(gw: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "minillm.access")
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{gw}/v1/chat/completions%0Aforged", json={"model": "a\nb\x1b[31m", "messages": MSG}
        )
        assert r.status_code == 404
        r = await client.post(
            f"{gw}/v1/chat/completions", json={"model": "a\nGET /forged 200", "messages": MSG}
        )
        assert r.status_code == 400
    await wait_idle(gw)
    lines = [r.getMessage() for r in caplog.records if r.name == "minillm.access"]
    assert len(lines) == 2
    assert all(line.isprintable() for line in lines), lines
    assert "model=a\\nGET /forged 200 " in lines[1]
    assert caplog.records[-1].model == "a\nGET /forged 200"  # type: ignore[attr-defined]


async def test_provider_errors_record_the_target_that_answered(
    upstream: FakeUpstream,
    start_gateway,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    db = tmp_path / "usage.db"
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_USAGE_DB=str(db)))
    upstream.push(Status(401), *[Status(529)] * 3)
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", json={"model": "gpt-x", "messages": MSG})
        assert r.status_code == 401
        r = await client.post(
            f"{gw}/v1/messages", json={"model": "claude-x", "max_tokens": 5, "messages": MSG}
        )
        assert r.status_code == 529
        assert r.headers["x-minillm-target"] == "anthropic:claude-x"
    s = await wait_idle(gw)
    assert value(s, "minillm_requests_total", endpoint="chat_completions", provider="openai",
                 model="gpt-x", status="401") == 1  # fmt: skip
    assert value(s, "minillm_requests_total", endpoint="messages", provider="anthropic",
                 model="claude-x", status="529") == 1  # fmt: skip
    got = sorted((r["provider"], r["model_served"], r["status"]) for r in await rows(db, 2))
    assert got == [("anthropic", "claude-x", 529), ("openai", "gpt-x", 401)]


async def test_empty_model_after_the_provider_says_so(gw: str) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/messages", json={**CALLS["anthropic"][1], "model": "oai:"})
    message = assert_anthropic_error(r, 400)["message"]
    assert "no model name after 'oai:'" in message
    assert "Unknown provider" not in message


@pytest.mark.parametrize("api", CALLS)
@pytest.mark.parametrize("model", ["oai:m", "claude-3-5-haiku"])
@pytest.mark.parametrize("answer", [GARBAGE, Raw(200, b'{"foo": 1}', "application/json")])
async def test_a_stream_request_answered_without_a_stream_is_502(
    gw: str, upstream: FakeUpstream, api: str, model: str, answer: Raw
) -> None:
    upstream.push(*[answer] * 3)
    path, body = CALLS[api]
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}{path}", json={**body, "model": model, "stream": True})
    error_of(api, r, 502)
    assert "oops" not in r.text and "foo" not in r.text


@pytest.mark.parametrize("api", CALLS)
async def test_a_same_api_answer_without_its_content_is_502(
    gw: str, upstream: FakeUpstream, api: str
) -> None:
    upstream.push(*[Raw(200, b'{"foo": 1}', "application/json")] * 3)
    path, body = CALLS[api]
    model = "claude-3-5-haiku" if api == "anthropic" else "oai:m"  # each to its own API
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}{path}", json={**body, "model": model})
    error_of(api, r, 502)
    assert "foo" not in r.text
