"""``GET /metrics`` parsed with prometheus-client's own parser, checked against the traffic."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anthropic
import httpx
import openai
import trio
from prometheus_client.parser import text_string_to_metric_families

from gateway_fixtures import gateway_env
from minillm.server.app import create_app
from upstream import DropAfter, FakeUpstream, Raw, Reply, Status

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
MSG = [{"role": "user", "content": "hi"}]


async def scrape(gw: str) -> Samples:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{gw}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def wait_idle(gw: str) -> Samples:
    """Scrape until no API request is in flight (the last access line is written)."""
    with trio.fail_after(2):
        while value(samples := await scrape(gw), "minillm_in_flight_requests"):
            await trio.sleep(0.01)
    return samples


async def test_counters_match_the_traffic(upstream: FakeUpstream, start_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_USAGE_DB="off"))
    oai = openai.AsyncOpenAI(base_url=f"{gw}/v1", api_key="x", max_retries=0)
    ant = anthropic.AsyncAnthropic(base_url=gw, api_key="x", max_retries=0)
    upstream.push(Reply(usage=(7, 3)), Reply(usage=(7, 3)), Reply(usage=(7, 3)))
    for _ in range(3):
        await oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    upstream.push(Reply(usage=(11, 4)), Reply(usage=(11, 4)))
    for _ in range(2):
        stream = await ant.messages.create(
            model="claude-3-5-haiku",
            max_tokens=8,
            messages=MSG,
            stream=True,  # type: ignore[arg-type]
        )
        async for _event in stream:
            pass
    upstream.push(Status(503), Reply(usage=(1, 1)))  # one retry, visible as an attempt
    await oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{gw}/v1/chat/completions", content=b"nope")
        assert r.status_code == 400

    s = await wait_idle(gw)
    chat = {"endpoint": "chat_completions", "provider": "openai", "model": "gpt-4o-mini"}
    assert value(s, "minillm_requests_total", **chat, status="200") == 4
    assert (
        value(
            s,
            "minillm_requests_total",
            endpoint="messages",
            provider="anthropic",
            model="claude-3-5-haiku",
            status="200",
        )
        == 2
    )
    assert value(s, "minillm_requests_total", endpoint="chat_completions", provider="",
                 model="", status="400") == 1  # fmt: skip
    assert total(s, "minillm_requests_total") == 7
    tok = {"provider": "openai", "model": "gpt-4o-mini"}
    assert value(s, "minillm_tokens_total", **tok, direction="input") == 3 * 7 + 1
    assert value(s, "minillm_tokens_total", **tok, direction="output") == 3 * 3 + 1
    ant_tok = {"provider": "anthropic", "model": "claude-3-5-haiku"}
    assert value(s, "minillm_tokens_total", **ant_tok, direction="input") == 22
    assert value(s, "minillm_tokens_total", **ant_tok, direction="output") == 8
    assert value(s, "minillm_upstream_attempts_total", provider="openai", outcome="ok") == 4
    assert value(s, "minillm_upstream_attempts_total", provider="openai", outcome="http_503") == 1
    assert value(s, "minillm_upstream_attempts_total", provider="anthropic", outcome="ok") == 2
    assert value(s, "minillm_rejections_total", reason="validation") == 1
    assert total(s, "minillm_request_duration_seconds_count") == 7
    assert value(s, "minillm_request_duration_seconds_count",
                 endpoint="messages", provider="anthropic") == 2  # fmt: skip
    assert total(s, "minillm_time_to_first_byte_seconds_count") == 7
    assert value(s, "minillm_in_flight_requests") == 0


async def test_rejections_by_reason(upstream: FakeUpstream, start_gateway) -> None:  # type: ignore[no-untyped-def]
    env = gateway_env(
        upstream.url,
        MINI_LLM_USAGE_DB="off",
        MINI_LLM_AUTH_KEYS="sk-gw-metrics-1",
        MINI_LLM_MAX_BODY_BYTES="1000",
    )
    gw = await start_gateway(env)
    async with httpx.AsyncClient() as client:
        await client.post(f"{gw}/v1/chat/completions", json={})  # no key
        await client.post(f"{gw}/v1/messages", json={}, headers={"x-api-key": "wrong-key"})
        auth = {"authorization": "Bearer sk-gw-metrics-1"}
        r = await client.post(f"{gw}/v1/chat/completions", content=b"x" * 2000, headers=auth)
        assert r.status_code == 413
    s = await wait_idle(gw)
    assert value(s, "minillm_rejections_total", reason="auth") == 2
    assert value(s, "minillm_rejections_total", reason="body_size") == 1
    assert value(s, "minillm_requests_total", endpoint="messages", provider="", model="",
                 status="401") == 1  # fmt: skip


_START = b'{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
_START += b'"model":"claude-x","content":[],"stop_reason":null,"usage":{"input_tokens":5}}}'
_OVERLOADED = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
FAILING_STREAM = (
    b"event: message_start\ndata: " + _START + b"\n\nevent: error\ndata: " + _OVERLOADED
)


async def test_errors_count_under_their_model_and_failed_streams_as_errors(
    upstream: FakeUpstream,
    start_gateway,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    db = tmp_path / "usage.db"
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_USAGE_DB=str(db)))
    upstream.push(Status(429), Raw(200, FAILING_STREAM + b"\n\n", "text/event-stream"))
    upstream.push(DropAfter(2))
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{gw}/v1/chat/completions", json={"model": "gpt-4o", "messages": MSG}
        )
        assert r.status_code == 429
        body = {"model": "claude-x", "max_tokens": 8, "messages": MSG, "stream": True}
        r = await client.post(f"{gw}/v1/messages", json=body)
        assert r.status_code == 200 and r.content.rstrip() == FAILING_STREAM  # passed through
        body = {"model": "gpt-4o", "messages": MSG, "stream": True}
        r = await client.post(f"{gw}/v1/chat/completions", json=body)
        assert r.status_code == 200 and b'"error"' in r.content  # ended by the gateway
    s = await wait_idle(gw)
    assert value(s, "minillm_requests_total", endpoint="chat_completions", provider="openai",
                 model="gpt-4o", status="429") == 1  # fmt: skip
    assert value(s, "minillm_requests_total", endpoint="messages", provider="anthropic",
                 model="claude-x", status="502") == 1  # fmt: skip
    assert value(s, "minillm_requests_total", endpoint="chat_completions", provider="openai",
                 model="gpt-4o", status="502") == 1  # fmt: skip
    assert total(s, "minillm_requests_total", status="200") == 0
    with trio.fail_after(5):
        while True:  # the usage writer commits off the request path
            rows = []
            if db.exists():
                with sqlite3.connect(db) as con:
                    rows = con.execute("SELECT status, model_asked FROM requests ORDER BY ts")
                    rows = rows.fetchall()
            if len(rows) == 3:
                break
            await trio.sleep(0.02)
    assert rows == [(429, "gpt-4o"), (502, "claude-x"), (502, "gpt-4o")]


def test_each_app_has_its_own_registry() -> None:
    import prometheus_client

    a, b = create_app(), create_app()
    assert a is not b
    names = set(prometheus_client.REGISTRY._names_to_collectors)
    assert not any(n.startswith("minillm_") for n in names)


async def test_scrapes_are_not_api_traffic(upstream: FakeUpstream, start_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_USAGE_DB="off"))
    await scrape(gw)
    s = await scrape(gw)
    assert total(s, "minillm_requests_total") == 0
    assert value(s, "minillm_in_flight_requests") == 0


def test_model_label_values_are_bounded() -> None:
    from minillm.server.metrics import MAX_MODELS, Metrics

    metrics = Metrics()
    labels = {metrics.model_label(f"model-{i}") for i in range(MAX_MODELS + 50)}
    assert len(labels) == MAX_MODELS + 1 and "other" in labels
    assert metrics.model_label("model-3") == "model-3"  # known names keep their label
