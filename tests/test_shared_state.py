"""Several gateways sharing state through a real Redis-compatible server: one rpm limit,
one key cooldown, one budget; a Redis outage is served with local state, then sharing
resumes; ``--workers 2`` with limits starts when Redis is configured."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import coredis
import httpx
import pytest
import trio

from gateway_fixtures import OPENAI_KEY, StartGateway, gateway_env
from processes import Served, serving
from redis_fixtures import RedisServer
from upstream import FakeUpstream, Status

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
GATEWAY_KEY = "sk-gw-team-123456"
AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}


def key_config(tmp_path: Path, extra: str = "", **fields: object) -> str:
    """A config file with one gateway key ``team`` and ``fields``; its path."""
    lines = ["[[auth.keys]]", "name = 'team'", f"key = '{GATEWAY_KEY}'"]
    lines += [f"{name} = {value!r}" for name, value in fields.items()]
    path = tmp_path / "keys.toml"
    path.write_text(extra + "\n".join(lines) + "\n")
    return str(path)


@asynccontextmanager
async def processes(
    env: dict[str, str], n: int = 2, args: Sequence[str] = ("serve", "--port", "0")
) -> AsyncIterator[list[Served]]:
    """``n`` gateway processes with ``env``."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(serving(env, args)) for _ in range(n)]


async def stored_keys(redis_env: dict[str, str]) -> dict[bytes, int]:
    """Every key under the test's prefix, with its time to live in milliseconds."""
    client = coredis.Redis.from_url(redis_env["MINI_LLM_REDIS_URL"])
    async with client:
        found = [k async for k in client.scan_iter(match=redis_env["MINI_LLM_REDIS_PREFIX"] + "*")]
        return {key: await client.pttl(key) for key in found}


async def post(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.post(f"{url}/v1/chat/completions", json=CHAT, headers=AUTH)


@pytest.mark.parametrize("through", [None, "sentinel_url", "cluster_url"])
async def test_two_processes_share_one_rpm_limit(
    tmp_path: Path, redis_env: dict[str, str], through: str | None, request: pytest.FixtureRequest
) -> None:
    """Through one server, a Sentinel or a Cluster; rpm and tpm make a two-key script."""
    config = key_config(tmp_path, rpm=4, tpm=100_000)
    env = {**redis_env, "MINI_LLM_CONFIG": config, "MINI_LLM_USAGE_DB": "off"}
    if through:
        env["MINI_LLM_REDIS_URL"] = request.getfixturevalue(through)
    async with processes(env) as (one, two), httpx.AsyncClient() as client:
        codes = [(await post(client, gw.url)).status_code for gw in (one, two) * 3]
    assert codes == [200, 200, 200, 200, 429, 429]


async def test_a_key_cooled_by_one_process_is_skipped_by_the_other(
    tmp_path: Path, redis_env: dict[str, str], upstream: FakeUpstream
) -> None:
    other = "sk-test-openai-key-0002"
    env = gateway_env(upstream.url, OPENAI_API_KEYS=f"{OPENAI_KEY},{other}")
    env.update(redis_env, MINI_LLM_USAGE_DB="off", MINI_LLM_RETRIES="0")
    upstream.push(Status(429, headers={"retry-after": "30"}))
    async with processes(env) as (one, two), httpx.AsyncClient() as client:
        first = await client.post(f"{one.url}/v1/chat/completions", json=CHAT)
        assert first.status_code == 200  # the other key, at once
        for _ in range(3):  # the other process starts with the cooled key: skipped
            r = await client.post(f"{two.url}/v1/chat/completions", json=CHAT)
            assert r.status_code == 200
        health = (await client.get(f"{two.url}/health/providers")).json()
    sent = [r.headers["authorization"].removeprefix("Bearer ") for r in upstream.requests]
    assert sent == [OPENAI_KEY, other, other, other, other]
    assert health["providers"]["openai"]["keys_cooling"] == ["sk-...0001"]
    (ttl,) = (await stored_keys(redis_env)).values()  # the provider's health, kept a while
    assert 30_000 < ttl <= 60_000  # the provider's 30 s, then the breaker cooldown


async def test_redis_down_is_served_locally_and_sharing_resumes(
    tmp_path: Path,
    redis_env: dict[str, str],
    redis_server: RedisServer,
    start_gateway: StartGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {**redis_env, "MINI_LLM_USAGE_DB": "off"}
    config = key_config(tmp_path, rpm=3)
    one, two = [await start_gateway(env, config_file=config) for _ in range(2)]
    async with httpx.AsyncClient() as client:
        assert [(await post(client, gw)).status_code for gw in (one, two, one, two)] == [
            200,
            200,
            200,
            429,
        ]
        redis_server.stop()
        with trio.fail_after(2):  # never a hang: each Redis call is bounded
            down = [(await post(client, one)).status_code for _ in range(4)]
        assert down == [200, 200, 200, 429]  # this process's own bucket
        metrics = (await client.get(f"{one}/metrics")).text
        assert "minillm_shared_state_errors_total 1.0" in metrics  # then left alone a while
        redis_server.start()  # empty: the shared buckets start full
        await trio.sleep(1.1)  # the back-off after a failure
        back = [(await post(client, gw)).status_code for gw in (one, two, one, two)]
        assert back == [200, 200, 200, 429]
    logged = [r.getMessage()[:27] for r in caplog.records if r.name == "minillm.shared"]
    assert logged == ["shared state: Redis failed ", "shared state: Redis answers"]  # `one` only


async def test_a_budget_runs_out_across_two_processes(
    tmp_path: Path, redis_env: dict[str, str]
) -> None:
    prices = "[models.gpt-4o-mini]\ninput_per_mtok = 100000\noutput_per_mtok = 100000\n"
    # $0.5 a request
    config = key_config(tmp_path, prices, budget_usd=1.2, budget_period="1d", rpm=100, tpm=10**6)
    env = {**redis_env, "MINI_LLM_CONFIG": config, "MINI_LLM_USAGE_DB": "off"}
    async with processes(env) as (one, two), httpx.AsyncClient() as client:
        codes = []
        for gw in (one, two) * 3:
            codes.append((await post(client, gw.url)).status_code)
            await trio.sleep(0.05)  # the cost is counted as the request ends
        refused = await post(client, one.url)
        anthropic = await client.post(
            f"{two.url}/v1/messages",
            json={**CHAT, "max_tokens": 10},
            headers={"x-api-key": GATEWAY_KEY},
        )
    assert codes == [200] * 3 + [429] * 3  # the third goes over the budget; then refused
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "budget of $1.2" in error["message"]
    assert int(refused.headers["retry-after"]) <= 86400
    assert anthropic.status_code == 429
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    stored = await stored_keys(redis_env)
    prefix = redis_env["MINI_LLM_REDIS_PREFIX"]
    assert {k.decode().removeprefix(prefix).split(":")[0] for k in stored} == {"spend", "rl"}
    assert all(ttl > 0 for ttl in stored.values())  # everything expires


async def test_two_workers_with_limits_and_redis_enforce_one_limit(
    tmp_path: Path, redis_env: dict[str, str]
) -> None:
    env = {**redis_env, "MINI_LLM_CONFIG": key_config(tmp_path, rpm=6), "MINI_LLM_USAGE_DB": "off"}
    args = ("serve", "--port", "0", "--workers", "2")
    async with processes(env, 1, args) as (gw,):
        codes = []
        for _ in range(12):  # a new connection each: both workers take some
            async with httpx.AsyncClient() as client:
                codes.append((await post(client, gw.url)).status_code)
        served_by = set(re.findall(rb"minillm\.access\[(\d+)\]: POST", bytes(gw.stderr)))
    assert codes == [200] * 6 + [429] * 6
    assert len(served_by) == 2  # both workers served
