"""Gateway keys through the real server and the official SDKs: 401, 403, 429, open paths."""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import trio

from gateway_fixtures import gateway_env
from minillm.core.auth import Authenticator, GatewayKey, parse_gateway_keys
from minillm.core.errors import Unauthorized
from minillm.core.ratelimit import MemoryBuckets, RateLimiter
from processes import clean_env, serving
from upstream import FakeUpstream, Reply

ALICE, BOB, CAROL, DAVE = (
    "sk-gw-alice-0001",
    "sk-gw-bob-00002",
    "sk-gw-carol-003",
    "sk-gw-dave-0004",
)
PREFIXES = ("", "/openai", "/anthropic")
CHAT = [{"role": "user", "content": "hi"}]

CONFIG = f"""
[[auth.keys]]
name = "alice"
key = "{ALICE}"

[[auth.keys]]
name = "bob"
key_sha256 = "{hashlib.sha256(BOB.encode()).hexdigest()}"
models = ["gpt-4o-*", "claude-3-5-*"]

[[auth.keys]]
name = "carol"
key = "{CAROL}"
rpm = 20

[[auth.keys]]
name = "dave"
key = "{DAVE}"
models = ["gpt-4o-*"]
rpm = 2
"""


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "minillm.toml"
    path.write_text(CONFIG)
    env = gateway_env(upstream.url, MINI_LLM_CONFIG=str(path), MINI_LLM_USAGE_DB="off")
    return await start_gateway(env)


def oai(gw: str, key: str, prefix: str = "") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw}{prefix}/v1", api_key=key, max_retries=0)


def ant(gw: str, key: str, prefix: str = "") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=f"{gw}{prefix}", api_key=key, max_retries=0)


async def chat(gw: str, key: str, prefix: str = "", model: str = "gpt-4o-mini") -> str:
    r = await oai(gw, key, prefix).chat.completions.create(model=model, messages=CHAT)  # type: ignore[arg-type]
    return r.choices[0].message.content or ""


async def message(gw: str, key: str, prefix: str = "", model: str = "claude-3-5-haiku") -> str:
    r = await ant(gw, key, prefix).messages.create(model=model, max_tokens=8, messages=CHAT)  # type: ignore[arg-type]
    return r.content[0].text  # type: ignore[union-attr]


async def test_valid_keys_pass_on_every_prefix(gw: str, upstream: FakeUpstream) -> None:
    for prefix in PREFIXES:
        assert await chat(gw, ALICE, prefix) == "echo: hi"
        assert await message(gw, ALICE, prefix) == "echo: hi"
        assert await chat(gw, BOB, prefix) == "echo: hi"  # hashed key, allowed model
    assert len(upstream.requests) == 9
    assert all(ALICE not in str(r.headers) for r in upstream.requests)  # never forwarded


async def test_wrong_or_missing_key_is_401_in_each_sdk(gw: str, upstream: FakeUpstream) -> None:
    for prefix in PREFIXES:
        with pytest.raises(openai.AuthenticationError) as oe:
            await chat(gw, "sk-gw-wrong-000", prefix)
        assert oe.value.status_code == 401
        with pytest.raises(anthropic.AuthenticationError) as ae:
            await message(gw, "sk-gw-wrong-000", prefix)
        assert ae.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        with pytest.raises(openai.AuthenticationError):
            await oai(gw, "sk-gw-wrong-000", prefix).models.list()
    async with httpx.AsyncClient() as client:
        for prefix in PREFIXES:
            r = await client.post(f"{gw}{prefix}/v1/chat/completions", json={"model": "x"})
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
            r = await client.post(f"{gw}{prefix}/v1/messages", json={"model": "x"})
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
            r = await client.get(f"{gw}{prefix}/v1/nope")  # unknown paths are not a probe
            assert r.status_code == 401
    assert upstream.requests == []


async def test_model_outside_allowlist_is_403(gw: str, upstream: FakeUpstream) -> None:
    for prefix in PREFIXES:
        with pytest.raises(openai.PermissionDeniedError):
            await chat(gw, BOB, prefix, model="gpt-4.1")
        with pytest.raises(anthropic.PermissionDeniedError) as exc:
            await message(gw, BOB, prefix, model="claude-opus-4")
        assert "claude-opus-4" in exc.value.message
        assert await message(gw, BOB, prefix) == "echo: hi"
    assert len(upstream.requests) == 3


async def test_a_model_refused_with_403_uses_no_rpm_unit(gw: str, upstream: FakeUpstream) -> None:
    for _ in range(3):
        with pytest.raises(openai.PermissionDeniedError):
            await chat(gw, DAVE, model="gpt-4.1")
    assert [await chat(gw, DAVE) for _ in range(2)] == ["echo: hi"] * 2  # both units left
    with pytest.raises(openai.RateLimitError):
        await chat(gw, DAVE)
    assert len(upstream.requests) == 2


async def test_rpm_limit_429_and_retry_after_honoured(gw: str, upstream: FakeUpstream) -> None:
    sent = 0
    with pytest.raises(openai.RateLimitError) as oe:
        while sent < 100:  # a full bucket holds one minute's worth; it refills 1 per 3 s
            await chat(gw, CAROL)
            sent += 1
    assert 20 <= sent < 24
    with pytest.raises(anthropic.RateLimitError) as ae:
        await message(gw, CAROL, "/anthropic")
    retry_after = int(oe.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 3
    assert 1 <= int(ae.value.response.headers["retry-after"]) <= 3
    assert await chat(gw, ALICE) == "echo: hi"  # other keys are not limited
    await trio.sleep(int(ae.value.response.headers["retry-after"]))
    assert await chat(gw, CAROL) == "echo: hi"
    assert len(upstream.requests) == sent + 2


async def test_tpm_limit_charges_tokens_after_the_reply(
    upstream: FakeUpstream, start_gateway, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "minillm.toml"
    path.write_text(f'[[auth.keys]]\nname = "dave"\nkey = "{ALICE}"\ntpm = 600\n')
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_CONFIG=str(path)))
    upstream.push(Reply(usage=(590, 15)))  # 605 of 600 tokens: 5 in debt, 0.5 s to repay
    await chat(gw, ALICE)
    with pytest.raises(anthropic.RateLimitError) as exc:
        await message(gw, ALICE)
    assert exc.value.response.headers["retry-after"] == "1"
    # the SDK's own retry honours Retry-After and then succeeds
    client = anthropic.AsyncAnthropic(base_url=gw, api_key=ALICE, max_retries=1)
    started = trio.current_time()
    r = await client.messages.create(model="claude-3-5-haiku", max_tokens=8, messages=CHAT)  # type: ignore[arg-type]
    assert r.content[0].text == "echo: hi"  # type: ignore[union-attr]
    assert trio.current_time() - started >= 0.4


async def test_health_open_metrics_open_on_loopback(gw: str, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, "minillm")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{gw}/health")).status_code == 200
        assert (await client.get(f"{gw}/metrics")).status_code == 200
        r = await client.get(f"{gw}/v1/models", headers={"x-api-key": ALICE})
        assert r.status_code == 200
    with trio.fail_after(2):  # the access line is written once the response is sent
        while "key=alice" not in caplog.text:
            await trio.sleep(0.01)
    assert ALICE not in caplog.text


async def test_metrics_needs_a_key_off_loopback() -> None:
    from werkzeug.datastructures import Headers

    from minillm.core.config import Config
    from minillm.server.admission import Admission

    admission = Admission(Config(auth_keys=parse_gateway_keys((), f"ops:{ALICE}")))
    assert admission.authenticate("/metrics", Headers(), "127.0.0.1") is None  # loopback: open
    with pytest.raises(Unauthorized):
        admission.authenticate("/metrics", Headers(), "10.1.2.3")
    key = admission.authenticate(
        "/metrics", Headers({"authorization": f"Bearer {ALICE}"}), "10.1.2.3"
    )
    assert key is not None and key.name == "ops"
    assert admission.authenticate("/health", Headers(), "10.1.2.3") is None


def test_authenticator_checks_every_key() -> None:
    keys = parse_gateway_keys((), f"a:{ALICE},{BOB}")
    assert [k.name for k in keys] == ["a", "env-2"]
    auth = Authenticator(keys)
    assert auth.authenticate(BOB).name == "env-2"
    for bad in ("", None, ALICE + "x", ALICE[:-1]):
        with pytest.raises(Unauthorized):
            auth.authenticate(bad)
    assert GatewayKey("g", b"", ("gpt-*",)).allows("gpt-4o")
    assert not GatewayKey("g", b"", ("gpt-*",)).allows("claude")
    with pytest.raises(ValueError, match="unique"):
        parse_gateway_keys((), f"a:{ALICE},a:{BOB}")


async def test_memory_buckets_refill() -> None:
    now = [0.0]
    limiter = RateLimiter(MemoryBuckets(clock=lambda: now[0]))
    key = GatewayKey("k", b"", rpm=2)
    await limiter.admit(key)
    await limiter.admit(key)
    with pytest.raises(Exception, match="Rate limit") as exc:
        await limiter.admit(key)
    assert exc.value.headers["retry-after"] == "30"  # type: ignore[attr-defined]
    now[0] = 30.0
    await limiter.admit(key)


async def test_non_loopback_bind_without_keys_is_refused() -> None:
    result = await trio.run_process(
        [sys.executable, "-m", "minillm", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=clean_env({}),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and "without gateway keys" in lines[0], lines
    for env in ({"MINI_LLM_AUTH_KEYS": ALICE}, {"MINI_LLM_ALLOW_UNAUTHENTICATED": "1"}):
        async with serving(env, ("serve", "--host", "0.0.0.0", "--port", "0")) as served:
            assert served.url.startswith("http://0.0.0.0:")
