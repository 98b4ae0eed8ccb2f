"""Accounting on its own: admission (key, rate limit, model allowlist) and the record of a
finished request (metrics, token charge), rate-limit buckets on the autojump clock."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
import trio
from werkzeug.datastructures import Headers

# The gateway's public pieces used here; one place to fix when modules move.
from minillm.auth import GatewayKey
from minillm.config import Config
from minillm.errors import Forbidden, RateLimited, Unauthorized
from minillm.ratelimit import MemoryBuckets, RateLimiter
from minillm.server.accounting import Accounting
from minillm.server.scope import RequestState

# every test runs on the autojump clock (pytest-trio picks it from the test's own arguments)
pytestmark = pytest.mark.usefixtures("hang_guard")

SECRET = "mk-test-team-secret-0001"
CHAT = "/v1/chat/completions"


def key(**limits: Any) -> GatewayKey:
    return GatewayKey("team", hashlib.sha256(SECRET.encode()).digest(), **limits)


def accounting(the_key: GatewayKey, **settings: Any) -> Accounting:
    """Accounting whose rate-limit buckets run on Trio's clock."""
    limiter = RateLimiter(MemoryBuckets(clock=trio.current_time))
    return Accounting(Config(auth_keys=(the_key,), **settings), limiter)


def bearer(secret: str = SECRET) -> Headers:
    return Headers({"authorization": f"Bearer {secret}"})


async def test_a_request_without_a_valid_key_is_refused(autojump_clock: object) -> None:
    acc = accounting(key())
    for headers in (Headers(), bearer("mk-wrong")):
        state = RequestState()
        with pytest.raises(Unauthorized):
            await acc.admit(state, CHAT, headers, "10.0.0.1")
        assert (state.key, state.rejection) == (None, "auth")
    state = RequestState()
    await acc.admit(state, CHAT, Headers({"x-api-key": SECRET}), "10.0.0.1")
    assert state.key is not None and state.key.name == "team"


async def test_local_paths_are_open_on_loopback_only(autojump_clock: object) -> None:
    acc = accounting(key())
    await acc.admit(RequestState(), "/health", Headers(), "10.0.0.1")
    await acc.admit(RequestState(), "/metrics", Headers(), "127.0.0.1")
    with pytest.raises(Unauthorized):
        await acc.admit(RequestState(), "/metrics", Headers(), "10.0.0.1")


async def test_rpm_refuses_then_refills_with_time(autojump_clock: object) -> None:
    acc = accounting(key(rpm=2))
    for _ in range(2):
        await acc.admit(RequestState(), CHAT, bearer(), None)
    state = RequestState()
    with pytest.raises(RateLimited) as caught:
        await acc.admit(state, CHAT, bearer(), None)
    assert caught.value.headers["retry-after"] == "30"
    assert state.rejection == "rate_limit"
    await trio.sleep(30)
    await acc.admit(RequestState(), CHAT, bearer(), None)


async def test_a_model_outside_the_allowlist_is_refused_and_refunded(
    autojump_clock: object,
) -> None:
    acc = accounting(key(rpm=1, models=("gpt-*",)))
    state = RequestState()
    await acc.admit(state, CHAT, bearer(), None)
    with pytest.raises(Forbidden):
        await acc.check_model(state, "claude-x")
    assert state.rejection == "auth"
    state = RequestState()
    await acc.admit(state, CHAT, bearer(), None)  # the refused request gave its unit back
    await acc.check_model(state, "gpt-4o")


def finished(the_key: GatewayKey | None, prompt: int, completion: int) -> RequestState:
    """The state of a JSON chat request served by ``openai:gpt-4o``."""
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return RequestState(
        status=200,
        model="gpt-4o",
        target="openai:gpt-4o",
        provider="openai",
        model_served="gpt-4o",
        key=the_key,
        reply_body=orjson.dumps({"object": "chat.completion", "usage": usage}),
    )


async def test_finish_counts_the_request_and_its_tokens(autojump_clock: object) -> None:
    acc = accounting(key())
    await acc.finish(finished(key(), 12, 5), "chat_completions", CHAT, wall=0.0, elapsed=0.5)
    sample = acc.metrics.registry.get_sample_value
    labels = {"endpoint": "chat_completions", "provider": "openai", "model": "gpt-4o"}
    assert sample("minillm_requests_total", {**labels, "status": "200"}) == 1
    tokens = {"provider": "openai", "model": "gpt-4o"}
    assert sample("minillm_tokens_total", {**tokens, "direction": "input"}) == 12
    assert sample("minillm_tokens_total", {**tokens, "direction": "output"}) == 5
    where = {"endpoint": "chat_completions", "provider": "openai"}
    assert sample("minillm_request_duration_seconds_sum", where) == 0.5


async def test_a_request_cancelled_before_answering_counts_as_499(autojump_clock: object) -> None:
    acc = accounting(key())
    state = RequestState(model="gpt-4o")
    await acc.finish(state, "chat_completions", CHAT, wall=0.0, elapsed=0.1)
    sample = acc.metrics.registry.get_sample_value
    labels = {"endpoint": "chat_completions", "provider": "", "model": ""}
    assert sample("minillm_requests_total", {**labels, "status": "499"}) == 1


async def test_tokens_used_are_charged_to_the_keys_tpm(autojump_clock: object) -> None:
    the_key = key(tpm=100)
    acc = accounting(the_key)
    await acc.admit(RequestState(), CHAT, bearer(), None)
    await acc.finish(finished(the_key, 100, 50), "chat_completions", CHAT, wall=0.0, elapsed=1.0)
    with pytest.raises(RateLimited) as caught:
        await acc.admit(RequestState(), CHAT, bearer(), None)
    assert int(caught.value.headers["retry-after"]) == 31  # 50 tokens over, at 100 a minute
    await trio.sleep(31)
    await acc.admit(RequestState(), CHAT, bearer(), None)
