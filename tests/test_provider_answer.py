"""The provider's answer wins: key rests and breakers choose between alternatives, never wall
a provider off on the gateway's own guess; the provider's errors reach the client; a failed
attempt releases what it holds at once.  Real fake providers, official SDKs."""

from __future__ import annotations

from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import trio

from gateway_fixtures import OPENAI_KEY, StartGateway, gateway_env
from upstream import FakeUpstream, SlowStream, Status

MSG = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": MSG}


async def post(gw: str, body: dict[str, object] = CHAT) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(f"{gw}/v1/chat/completions", json=body)


async def providers(gw: str) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient() as client:
        health: dict[str, dict[str, object]] = (await client.get(f"{gw}/health/providers")).json()[
            "providers"
        ]
    return health


async def test_429_without_a_hint_does_not_wall_off_the_provider(
    start_gateway: StartGateway, upstream: FakeUpstream
) -> None:
    gw = await start_gateway(gateway_env(upstream.url))
    upstream.push(Status(429))
    r = await post(gw)
    assert r.status_code == 429
    assert r.json()["error"]["message"] == "fake upstream error 429"  # the provider's own
    r = await post(gw)  # the key cools on the gateway's guess only: the provider is asked
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
    assert len(upstream.requests) == 2


async def test_retry_after_is_honoured_then_the_provider_is_called_again(
    start_gateway: StartGateway, upstream: FakeUpstream
) -> None:
    gw = await start_gateway(gateway_env(upstream.url))
    upstream.push(Status(429, headers={"retry-after": "2"}))
    client = openai.AsyncOpenAI(base_url=f"{gw}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.RateLimitError) as first:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    assert first.value.response.headers["retry-after"] == "2"
    assert first.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as local:  # on the provider's word: not called
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    assert local.value.response.headers["retry-after"] in ("1", "2")
    assert len(upstream.requests) == 1
    await trio.sleep(2)
    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "echo: hi"
    assert len(upstream.requests) == 2


@pytest.mark.parametrize(
    "hint",
    [
        {"x-ratelimit-reset-requests": "20s", "x-ratelimit-remaining-requests": "0"},
        {"retry-after-ms": "20000"},
    ],
)
async def test_rate_limit_reset_headers_cool_the_key(
    start_gateway: StartGateway, upstream: FakeUpstream, hint: dict[str, str]
) -> None:
    gw = await start_gateway(gateway_env(upstream.url))
    upstream.push(Status(429, headers=hint))
    assert (await post(gw)).status_code == 429
    r = await post(gw)  # cooling on the provider's word: answered locally
    assert r.status_code == 429
    assert 18 <= int(r.headers["retry-after"]) <= 20
    assert len(upstream.requests) == 1
    assert (await providers(gw))["openai"]["keys_cooling"] == ["sk-...0001"]


async def test_a_key_is_asked_once_per_request_even_when_told_to_retry_at_once(
    start_gateway: StartGateway, upstream: FakeUpstream
) -> None:
    gw = await start_gateway(gateway_env(upstream.url, OPENAI_API_KEYS="key-a,key-b"))
    upstream.push(*[Status(429, headers={"retry-after": "0"})] * 5)
    r = await post(gw)
    assert (r.status_code, r.headers["retry-after"]) == (429, "0")
    assert len(upstream.requests) == 2  # each key once, not a loop until the deadline


async def test_single_rejected_key_is_still_used(
    start_gateway: StartGateway, upstream: FakeUpstream
) -> None:
    gw = await start_gateway(gateway_env(upstream.url))
    leaky = {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}", "type": "x"}}
    upstream.push(Status(401, body=leaky))
    r = await post(gw)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Incorrect API key provided: ***"
    assert (await post(gw)).status_code == 200  # nothing else left: the key is used
    assert (await providers(gw))["openai"]["keys_cooling"] == []  # and it works again


async def test_two_rejected_keys_answer_401_not_429(
    start_gateway: StartGateway, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    keys = "sk-bad-key-a-0001,sk-bad-key-b-0002"
    gw = await start_gateway(gateway_env(upstream.url, OPENAI_API_KEYS=keys))
    upstream.push(*[Status(401)] * 3)
    for _ in range(2):
        r = await post(gw)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "invalid_api_key"
    sent = [r.headers["authorization"] for r in upstream.requests]
    a, b = "Bearer sk-bad-key-a-0001", "Bearer sk-bad-key-b-0002"
    assert sent == [a, b, a]  # then the key that recovers soonest
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 2  # once per key, not per request
    assert "sk-bad-key-a-0001" not in caplog.text


async def test_alias_skips_a_rejected_first_provider(
    start_gateway: StartGateway, upstream: FakeUpstream
) -> None:
    aliases = '{"m": ["openai:gpt-4o", "anthropic:claude-x"]}'
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_MODEL_ALIASES=aliases))
    upstream.push(Status(401))
    for _ in range(2):
        r = await post(gw, {**CHAT, "model": "m"})
        assert r.status_code == 200
        assert r.headers["x-minillm-target"] == "anthropic:claude-x"
    paths = [r.path for r in upstream.requests]
    assert paths == ["/v1/chat/completions", "/v1/messages", "/v1/messages"]


async def test_cross_format_429_keeps_retry_after_and_the_providers_message(
    start_gateway: StartGateway, upstream: FakeUpstream
) -> None:
    gw = await start_gateway(gateway_env(upstream.url))
    upstream.push(
        Status(429, headers={"retry-after": "3", "retry-after-ms": "2500"}),  # OpenAI -> Anthropic
        Status(429, headers={"retry-after": "4"}),  # Anthropic -> OpenAI
    )
    ant = anthropic.AsyncAnthropic(base_url=gw, api_key="x", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as exc:
        await ant.messages.create(model="gpt-4o", max_tokens=8, messages=MSG)  # type: ignore[arg-type]
    assert exc.value.response.headers["retry-after"] == "3"
    assert exc.value.response.headers["retry-after-ms"] == "2500"
    assert exc.value.body["error"] == {  # type: ignore[index]
        "type": "rate_limit_error",
        "message": "fake upstream error 429",
    }
    oai = openai.AsyncOpenAI(base_url=f"{gw}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.RateLimitError) as oexc:
        await oai.chat.completions.create(model="claude-x", messages=MSG)  # type: ignore[arg-type]
    assert oexc.value.response.headers["retry-after"] == "4"
    assert oexc.value.body["message"] == "fake upstream error 429"  # type: ignore[index]
    assert oexc.value.body["type"] == "rate_limit_error"  # type: ignore[index]


@pytest.fixture
async def two_providers(
    start_gateway: StartGateway, upstream: FakeUpstream, nursery: trio.Nursery, tmp_path: Path
) -> tuple[str, FakeUpstream]:
    """Alias ``m``: ``first:a`` (``upstream``), then ``backup:b`` (another fake); alias
    ``same``: two models of ``first``; ``first`` takes one call at a time, no retries."""
    backup = FakeUpstream()
    await nursery.start(backup.serve)
    config = tmp_path / "minillm.toml"
    config.write_text(
        f'[providers.first]\nbase_url = "{upstream.url}/v1"\nmax_in_flight = 1\n'
        f'[providers.backup]\nbase_url = "{backup.url}/v1"\n'
        '[aliases]\nm = ["first:a", "backup:b"]\nsame = ["first:a", "first:b"]\n'
    )
    env = {"MINI_LLM_CONFIG": str(config), "MINI_LLM_RETRIES": "0", "MINI_LLM_QUEUE_TIMEOUT": "0.3"}
    return await start_gateway(env), backup


async def test_failed_attempt_releases_its_slot_while_the_fallback_streams(
    two_providers: tuple[str, FakeUpstream], upstream: FakeUpstream
) -> None:
    gw, backup = two_providers
    upstream.push(Status(500))
    backup.push(SlowStream(chunks=40, interval=0.05))
    async with httpx.AsyncClient(timeout=10) as client:
        body = {**CHAT, "model": "m", "stream": True}
        async with client.stream("POST", f"{gw}/v1/chat/completions", json=body) as held:
            assert held.headers["x-minillm-target"] == "backup:b"
            health = await providers(gw)
            assert (health["first"]["in_flight"], health["backup"]["in_flight"]) == (0, 1)
            r = await client.post(f"{gw}/v1/chat/completions", json={**CHAT, "model": "first:a"})
            assert r.status_code == 200  # its one slot is free again
            async for _ in held.aiter_bytes():
                pass


async def test_two_targets_on_one_provider_take_one_slot_at_a_time(
    two_providers: tuple[str, FakeUpstream], upstream: FakeUpstream
) -> None:
    gw, _ = two_providers
    upstream.push(Status(500))
    r = await post(gw, {**CHAT, "model": "same"})
    assert r.status_code == 200
    assert r.headers["x-minillm-target"] == "first:b"
    assert [q.json["model"] for q in upstream.requests] == ["a", "b"]
    assert (await providers(gw))["first"]["in_flight"] == 0
