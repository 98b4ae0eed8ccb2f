"""Request ids: taken from the client when sane, else made; returned, forwarded, logged."""

from __future__ import annotations

import logging

import anthropic
import httpx
import openai
import pytest
import trio

from gateway_fixtures import gateway_env
from upstream import FakeUpstream, Status

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway) -> str:  # type: ignore[no-untyped-def]
    return await start_gateway(gateway_env(upstream.url, MINI_LLM_USAGE_DB="off"), retries=0)


async def test_client_id_round_trips_through_the_sdk(gw: str, upstream: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=f"{gw}/v1", api_key="x", max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "trace-42/a.b"},
    )
    assert raw.headers["x-request-id"] == "trace-42/a.b"
    assert upstream.requests[-1].headers["x-request-id"] == "trace-42/a.b"


async def test_generated_when_absent_or_insane(gw: str, upstream: FakeUpstream) -> None:
    seen = set()
    async with httpx.AsyncClient() as client:
        for sent in (None, "x" * 129, "bad\x01id", "", "tab\there"):
            headers = {} if sent is None else {"x-request-id": sent}
            r = await client.post(f"{gw}/v1/chat/completions", json=CHAT, headers=headers)
            rid = r.headers["x-request-id"]
            assert rid.startswith("req_") and len(rid) == 28 and rid != sent
            assert upstream.requests[-1].headers["x-request-id"] == rid
            seen.add(rid)
        ok = "y" * 128
        r = await client.post(f"{gw}/v1/chat/completions", json=CHAT, headers={"x-request-id": ok})
        assert r.headers["x-request-id"] == ok
    assert len(seen) == 5


async def test_errors_carry_the_id_in_header_and_body(gw: str, upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{gw}/v1/chat/completions", content=b"{", headers={"x-request-id": "e1"}
        )
        assert r.status_code == 400
        assert r.headers["x-request-id"] == "e1" and r.json()["request_id"] == "e1"
        r = await client.get(f"{gw}/nowhere", headers={"x-request-id": "e2"})
        assert r.status_code == 404 and r.headers["x-request-id"] == "e2"
        assert (await client.get(f"{gw}/health")).headers["x-request-id"].startswith("req_")
    upstream.push(Status(500))
    sdk = anthropic.AsyncAnthropic(base_url=gw, api_key="x", max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as exc:
        await sdk.messages.create(
            model="claude-3-5-haiku",
            max_tokens=8,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-request-id": "e3"},
        )
    assert exc.value.response.headers["x-request-id"] == "e3"
    assert exc.value.body["request_id"] == "e3"  # type: ignore[index]


async def test_id_in_the_access_log(gw: str, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, "minillm.access")
    async with httpx.AsyncClient() as client:
        await client.post(f"{gw}/v1/chat/completions", json=CHAT, headers={"x-request-id": "log-1"})
    with trio.fail_after(2):
        while "rid=log-1" not in caplog.text:
            await trio.sleep(0.01)


def test_json_log_lines_carry_the_request_id() -> None:
    import io

    import orjson

    from minillm.server.logfmt import JSONFormatter, RequestIdFilter
    from minillm.server.request import RequestNotes, RequestRecord, Served, request_id_scope
    from minillm.server.scope import access_line

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("minillm")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with request_id_scope({}, RequestNotes("j-1", started=0.0)):
            logging.getLogger("minillm.gateway").warning("retrying %s", "openai")
            record = RequestRecord(
                "j-1", "POST", "/v1/messages", 200, 0.0123, served=Served(model="m")
            )
            access_line(record)
        logging.getLogger("minillm.server").info("outside a request")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    first, access, outside = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "retrying openai" and first["request_id"] == "j-1"
    assert first["level"] == "warning" and first["timestamp"].endswith("+00:00")
    assert access["request_id"] == "j-1" and access["status"] == 200
    assert access["path"] == "/v1/messages" and access["duration_ms"] == 12.3
    assert outside["request_id"] is None
