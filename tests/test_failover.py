"""Retries, key cooldown, failover across providers and formats, breaker, admission."""

from __future__ import annotations

import socket

import anthropic
import httpx
import openai
import pytest
import trio

from gateway_fixtures import gateway_env
from upstream import FakeUpstream, Hang, Reply, Silent, SlowStream, StallAfter, Status

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def second_upstream(nursery: trio.Nursery) -> FakeUpstream:
    fake = FakeUpstream()
    await nursery.start(fake.serve)
    return fake


async def post(gw: str, body: dict[str, object] = CHAT) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(f"{gw}/v1/chat/completions", json=body)


async def test_500_then_success_is_retried(start_gateway, upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(gateway_env(upstream.url))
    upstream.push(Status(500), Status(503))
    r = await post(gw)
    assert r.status_code == 200, r.text
    assert len(upstream.requests) == 3


async def test_retries_are_bounded(start_gateway, upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_RETRIES="1"))
    upstream.push(*[Status(502)] * 5)
    r = await post(gw)
    assert r.status_code == 502
    assert r.headers["x-minillm-target"] == "openai:gpt-4o-mini"  # errors say who answered
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_client_errors_are_not_retried(
    start_gateway, upstream: FakeUpstream, status: int
) -> None:  # type: ignore[no-untyped-def]
    env = gateway_env(upstream.url, MINI_LLM_MODEL_ALIASES='{"m": ["openai:a", "anthropic:b"]}')
    gw = await start_gateway(env)
    upstream.push(Status(status))
    r = await post(gw, {**CHAT, "model": "m"})
    assert r.status_code == status
    assert len(upstream.requests) == 1


async def test_429_cools_that_key_and_uses_the_next(start_gateway, upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(gateway_env(upstream.url, OPENAI_API_KEYS="key-a,key-b"))
    upstream.push(Status(429, headers={"retry-after": "30"}))
    for _ in range(3):
        assert (await post(gw)).status_code == 200
    keys = [r.headers["authorization"] for r in upstream.requests]
    assert keys == ["Bearer key-a", "Bearer key-b", "Bearer key-b", "Bearer key-b"]


async def test_every_key_cooling_answers_429_with_retry_after(
    start_gateway, upstream: FakeUpstream
) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(gateway_env(upstream.url, OPENAI_API_KEYS="key-a,key-b"))
    upstream.push(
        Status(429, headers={"retry-after": "20"}), Status(429, headers={"retry-after": "40"})
    )
    r = await post(gw)  # the provider's own 429 (the last answer), relayed
    assert r.status_code == 429
    assert r.headers["retry-after"] == "40"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    r = await post(gw)  # both keys cool on the provider's word: no upstream call at all
    assert r.status_code == 429
    assert 15 <= int(r.headers["retry-after"]) <= 20  # the soonest recovery
    assert "rate limited" in r.json()["error"]["message"]
    assert len(upstream.requests) == 2
    with pytest.raises(openai.RateLimitError):
        client = openai.AsyncOpenAI(api_key="x", base_url=f"{gw}/v1", max_retries=0)
        await client.chat.completions.create(model="gpt-4o", messages=CHAT["messages"])  # type: ignore[arg-type]


async def test_401_disables_key(start_gateway, upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(
        gateway_env(upstream.url, OPENAI_API_KEYS="bad-key-000000,good-key-00000")
    )
    upstream.push(Status(401))
    for _ in range(2):
        assert (await post(gw)).status_code == 200
    keys = [r.headers["authorization"] for r in upstream.requests]
    assert keys == ["Bearer bad-key-000000", "Bearer good-key-00000", "Bearer good-key-00000"]
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"{gw}/health/providers")).json()["providers"]["openai"]
    assert health["keys_cooling"] == ["bad...0000"]
    assert health["keys_available"] == 1


async def test_fallback_across_formats_on_connection_error(
    start_gateway, upstream: FakeUpstream
) -> None:  # type: ignore[no-untyped-def]
    env = gateway_env(
        upstream.url,
        MINI_LLM_ANTHROPIC_BASE_URL=dead_url(),
        MINI_LLM_MODEL_ALIASES='{"smart": ["anthropic:claude-x", "openai:gpt-4.1"]}',
    )
    gw = await start_gateway(env)
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{gw}/v1", max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model="smart",
        messages=CHAT["messages"],  # type: ignore[arg-type]
    )
    assert raw.headers["x-minillm-target"] == "openai:gpt-4.1"
    assert raw.parse().choices[0].message.content == "echo: hi"
    # and the reverse direction: Anthropic client, Claude target down, GPT serves it
    aclient = anthropic.AsyncAnthropic(api_key="x", base_url=gw, max_retries=0)
    async with aclient.messages.stream(
        model="smart", max_tokens=16, messages=[{"role": "user", "content": "yo"}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == "echo: yo"  # type: ignore[union-attr]


@pytest.fixture
async def with_backup(start_gateway, upstream: FakeUpstream, nursery: trio.Nursery, tmp_path):  # type: ignore[no-untyped-def]
    """A gateway whose alias ``m`` goes to ``upstream`` (0.5 s to the first byte, no
    retries), then to a keyless backup provider; yields (gateway URL, backup)."""
    backup = await second_upstream(nursery)
    config = tmp_path / "minillm.toml"
    config.write_text(
        f'[providers.first]\nbase_url = "{upstream.url}/v1"\ntimeout = 0.5\n'
        f'[providers.backup]\nbase_url = "{backup.url}/v1"\n'
        '[aliases]\nm = ["first:a", "backup:b"]\n'
    )
    gw = await start_gateway({"MINI_LLM_CONFIG": str(config), "MINI_LLM_RETRIES": "0"})
    return gw, backup


async def test_hang_before_first_byte_fails_over(
    with_backup: tuple[str, FakeUpstream], upstream: FakeUpstream
) -> None:
    gw, backup = with_backup
    upstream.push(Hang())
    started = trio.current_time()
    r = await post(gw, {**CHAT, "model": "m", "stream": True})
    assert r.status_code == 200
    assert r.headers["x-minillm-target"] == "backup:b"
    assert b"echo: " in r.content
    assert trio.current_time() - started < 3
    assert "authorization" not in backup.requests[0].headers  # keyless provider


async def test_stream_silent_after_headers_fails_over(
    with_backup: tuple[str, FakeUpstream], upstream: FakeUpstream
) -> None:
    """Headers are not a first byte: a stream that sends nothing is failed over."""
    gw, _ = with_backup
    upstream.push(Silent())
    r = await post(gw, {**CHAT, "model": "m", "stream": True})
    assert r.status_code == 200
    assert r.headers["x-minillm-target"] == "backup:b"
    assert r.content.endswith(b"data: [DONE]\n\n")
    await upstream.wait_disconnect(timeout=2)  # the silent stream was closed


async def test_stream_failure_after_first_byte_is_not_retried(
    start_gateway, upstream: FakeUpstream
) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway(gateway_env(upstream.url), stream_idle_timeout=0.3)
    upstream.push(StallAfter(3))
    r = await post(gw, {**CHAT, "stream": True})
    assert r.status_code == 200
    assert r.content.count(b"w0") == 1  # content never sent twice
    assert b'"error"' in r.content.rsplit(b"\n\n", 2)[-2]
    assert len(upstream.requests) == 1


async def test_breaker_opens_after_consecutive_failures(start_gateway) -> None:  # type: ignore[no-untyped-def]
    env = gateway_env(dead_url(), MINI_LLM_RETRIES="0", MINI_LLM_BREAKER_FAILURES="2")
    gw = await start_gateway(env)
    for _ in range(2):
        assert (await post(gw)).status_code == 502
    r = await post(gw)  # open, and no other target: says so, with the time until half-open
    assert r.status_code == 503
    assert 29 <= int(r.headers["retry-after"]) <= 30
    assert r.json()["error"]["message"].startswith("Provider 'openai' is failing")
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"{gw}/health/providers")).json()["providers"]["openai"]
        assert health["breaker"] == "open"
        r = await client.post(
            f"{gw}/v1/messages",
            json={"model": "gpt-4o", "max_tokens": 8, "messages": CHAT["messages"]},
        )
    assert r.status_code == 503 and r.json()["type"] == "error"  # in the caller's shape
    assert r.headers["retry-after"]


async def test_admission_limit_answers_503(start_gateway, upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    env = gateway_env(upstream.url, MINI_LLM_MAX_IN_FLIGHT="1", MINI_LLM_QUEUE_TIMEOUT="0.2")
    gw = await start_gateway(env)
    upstream.push(SlowStream(chunks=40, interval=0.05))
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream(
            "POST", f"{gw}/v1/chat/completions", json={**CHAT, "stream": True}
        ) as held:
            assert held.status_code == 200
            r = await client.post(f"{gw}/v1/chat/completions", json=CHAT)
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            health = (await client.get(f"{gw}/health/providers")).json()["providers"]
            assert health["openai"]["in_flight"] == 1 and health["anthropic"]["in_flight"] == 0
            async for _ in held.aiter_bytes():
                pass
        r = await client.post(f"{gw}/v1/chat/completions", json=CHAT)
        assert r.status_code == 200  # the slot was released when the stream ended


_ = Reply


async def test_model_discovery_lists_provider_models_and_survives_a_dead_one(
    start_gateway,
    upstream: FakeUpstream,  # type: ignore[no-untyped-def]
) -> None:
    env = gateway_env(
        upstream.url,
        MINI_LLM_DISCOVER_MODELS="1",
        MINI_LLM_PROVIDER_DOWN_URL=dead_url() + "/v1",
        MINI_LLM_MODEL_ALIASES='{"fast": "openai:gpt-4.1-nano"}',
    )
    gw = await start_gateway(env)
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{gw}/v1/models")
        again = await client.get(f"{gw}/v1/models")
    assert r.status_code == 200
    ids = [m["id"] for m in r.json()["data"]]
    assert ids[0] == "fast"
    assert any(i.startswith("openai:") for i in ids[1:])
    assert not any(i.startswith("down:") for i in ids)
    assert again.json() == r.json()
    assert sum(req.path == "/v1/models" for req in upstream.requests) == 1  # cached
