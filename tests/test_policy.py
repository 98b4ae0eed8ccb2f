"""Sans-I/O retry policy, plus a property test through the real gateway."""

from __future__ import annotations

import random
from email.utils import formatdate
from functools import partial

import httpx
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_fixtures import gateway_env
from minillm.core.config import Config
from minillm.core.policy import (
    Action,
    Failure,
    RetryPolicy,
    parse_duration,
    parse_retry_after,
    provider_wait,
    rate_limit_reset,
)
from minillm.core.provider_state import mask_key
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


def test_parse_duration() -> None:
    assert parse_duration("6m0s") == 360
    assert parse_duration("20ms") == 0.02
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("1h2m3s") == 3723
    assert parse_duration("7") == 7
    for junk in ("", "soon", "1x", "-1s", "s"):
        assert parse_duration(junk) is None


def test_rate_limit_reset_of_openai_and_anthropic() -> None:
    openai = {"x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "6m0s"}
    assert rate_limit_reset(openai, 0) == 0.02  # which limit was hit is unknown: the soonest
    hit = {**openai, "X-RateLimit-Remaining-Tokens": "0", "x-ratelimit-remaining-requests": "9"}
    assert rate_limit_reset(hit, 0) == 360  # the exhausted one
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    anthropic = {
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
        "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:02.5+00:00",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-requests-remaining": "12",
    }
    assert rate_limit_reset(anthropic, now) == 2.5
    past, naive = "2025-12-31T23:59:00Z", "2026-01-01T00:00:30"  # no time zone: not RFC 3339
    assert rate_limit_reset({"anthropic-ratelimit-tokens-reset": past}, now) == 0
    assert rate_limit_reset({"anthropic-ratelimit-tokens-reset": naive}, now) is None
    assert rate_limit_reset({"x-ratelimit-reset-requests": "later"}, now) is None
    assert rate_limit_reset({}, now) is None


def test_provider_wait() -> None:
    headers = {"x-ratelimit-reset-requests": "2s"}
    assert provider_wait(429, headers, 0) == 2
    assert provider_wait(500, headers, 0) is None  # OpenAI sends these on every answer
    assert provider_wait(429, {**headers, "retry-after": "7"}, 0) == 7  # Retry-After wins
    assert provider_wait(503, {"retry-after-ms": "250"}, 0) == 0.25
    assert provider_wait(429, {}, 0) is None  # no hint: the caller guesses


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
