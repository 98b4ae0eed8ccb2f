"""Sans-I/O retry policy and provider health, plus a property test through the real gateway."""

from __future__ import annotations

import random
from email.utils import formatdate
from functools import partial

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_fixtures import gateway_env
from minillm.config import Config
from minillm.policy import Action, Failure, RetryPolicy, parse_retry_after
from minillm.provider_state import BreakerSettings, KeysCooling, LocalHealth, mask_key
from minillm.server.serve import bind_socket, serve
from upstream import DropAfter, FakeUpstream, Hang, Reply, StallAfter, Status

RNG = random.Random(7)


def decide(failure: Failure, retry: int = 1, remaining: float = 60, keys: bool = True) -> object:
    return RetryPolicy(retries=2).decide(
        failure, retry=retry, remaining=remaining, key_available=keys, rng=RNG
    )


def test_policy_rules() -> None:
    for status in (400, 404, 413, 422):
        assert decide(Failure(status)).action is Action.GIVE_UP  # type: ignore[attr-defined]
    for status in (None, 500, 502, 529):
        retry = decide(Failure(status))
        assert retry.action is Action.RETRY and 0 <= retry.delay <= 0.25  # type: ignore[attr-defined]
        assert decide(Failure(status), retry=3).action is Action.NEXT_TARGET  # type: ignore[attr-defined]
    assert decide(Failure(500, retry_after=5)).delay == 5  # type: ignore[attr-defined]
    assert decide(Failure(500, retry_after=5), remaining=4).action is Action.NEXT_TARGET  # type: ignore[attr-defined]
    assert decide(Failure(429)).action is Action.RETRY  # type: ignore[attr-defined]
    assert decide(Failure(401), keys=False).action is Action.NEXT_TARGET  # type: ignore[attr-defined]


def test_backoff_is_capped_full_jitter() -> None:
    policy = RetryPolicy(base=0.25, cap=8)
    delays = [policy.backoff(10, RNG) for _ in range(200)]
    assert max(delays) <= 8 and min(delays) >= 0 and max(delays) > 4


def test_parse_retry_after() -> None:
    assert parse_retry_after({"Retry-After": "7"}, 0) == 7
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}, 0) == 1.5
    assert parse_retry_after({"retry-after": formatdate(1000 + 30, usegmt=True)}, 1000) == 30
    assert parse_retry_after({"retry-after": "soon"}, 0) is None
    assert parse_retry_after({"retry-after": "nan"}, 0) is None
    assert parse_retry_after({}, 0) is None


def test_keys_rotate_cool_and_recover() -> None:
    health = LocalHealth("p", ("key-a", "key-b"), BreakerSettings(key_cooldown=30))
    assert [health.acquire_key(0) for _ in range(3)] == ["key-a", "key-b", "key-a"]
    health.cool_key("key-a", None, now=0)
    assert {health.acquire_key(1) for _ in range(4)} == {"key-b"}
    health.cool_key("key-b", 10, now=1)
    with pytest.raises(KeysCooling) as cooling:
        health.acquire_key(2)
    assert cooling.value.retry_after == 9
    assert health.acquire_key(12) == "key-b"


def test_breaker_opens_then_half_opens_for_one_probe() -> None:
    health = LocalHealth("p", (), BreakerSettings(failures=2, cooldown=10))
    health.record_failure(0)
    assert health.allows(0)
    health.record_failure(1)
    assert not health.allows(5)
    assert health.allows(11)  # the probe
    assert not health.allows(11.5)  # only one
    health.record_failure(12)
    assert not health.allows(13)
    assert health.allows(22)
    health.record_success()
    assert health.allows(22) and health.snapshot(22)["breaker"] == "closed"


def test_mask_key() -> None:
    assert mask_key("sk-abcdefghijklmnop") == "sk-...mnop"
    assert mask_key("short") == "***"


# -- property: any failure script gives one answer or one error, in time -------------------

SCRIPTS = st.lists(
    st.sampled_from(
        [Status(500), Status(503), Status(429), Status(400), Hang(), DropAfter(2), StallAfter(2)]
    ),
    max_size=4,
)
DEADLINE = 1.5


async def _run_script(script: list[object], stream: bool) -> None:
    async with trio.open_nursery() as nursery:
        upstream = FakeUpstream()
        await nursery.start(upstream.serve)
        upstream.push(*script, Reply(text="one two three"))  # type: ignore[arg-type]
        config = Config.load(
            gateway_env(upstream.url, OPENAI_API_KEYS="key-a,key-b"),
            request_timeout=DEADLINE,
            stream_idle_timeout=0.3,
        )
        gw = await nursery.start(
            partial(serve, config, sock=bind_socket("127.0.0.1", 0), handle_signals=False)
        )
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": stream}
        started = trio.current_time()
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.post(f"{gw}/v1/chat/completions", json=body)
        elapsed = trio.current_time() - started
        assert elapsed < DEADLINE + 0.8, elapsed
        if r.status_code != 200:
            assert "error" in r.json()
        elif stream:
            events = [e for e in r.content.split(b"\n\n") if e]
            ended = events[-1] == b"data: [DONE]" or b'"error"' in events[-1]
            assert ended, events[-1]
            assert r.content.count(b"one") + r.content.count(b"w0") <= 1  # no duplicates
        else:
            assert r.json()["choices"][0]["message"]["content"] == "one two three"
        nursery.cancel_scope.cancel()


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(script=SCRIPTS, stream=st.booleans())
def test_any_failure_script_gives_one_answer_or_one_error(
    script: list[object], stream: bool
) -> None:
    trio.run(_run_script, script, stream)
