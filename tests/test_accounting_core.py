"""Admission and records on their own: the key, rate limit and model allowlist on the way in;
the record of a finished request (metrics, token charge) on the way out; rate-limit buckets
on the autojump clock."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import trio
from werkzeug.datastructures import Headers

from minillm.core.auth import GatewayKey
from minillm.core.config import Config
from minillm.core.errors import Forbidden, RateLimited, Unauthorized
from minillm.core.ratelimit import MemoryBuckets, RateLimiter
from minillm.core.tokens import Tokens
from minillm.server.admission import Admission
from minillm.server.metrics import rejection_reason
from minillm.server.records import Records
from minillm.server.request import RequestNotes, RequestRecord, Served

# every test runs on the autojump clock (pytest-trio picks it from the test's own arguments)
pytestmark = pytest.mark.usefixtures("hang_guard")

SECRET = "mk-test-team-secret-0001"
CHAT = "/v1/chat/completions"


def key(**limits: Any) -> GatewayKey:
    return GatewayKey("team", hashlib.sha256(SECRET.encode()).digest(), **limits)


def admission(the_key: GatewayKey, **settings: Any) -> Admission:
    """Admission whose rate-limit buckets run on Trio's clock."""
    limiter = RateLimiter(MemoryBuckets(clock=trio.current_time))
    return Admission(Config(auth_keys=(the_key,), **settings), limiter)


async def admit(adm: Admission, headers: Headers, path: str = CHAT) -> GatewayKey | None:
    """What the app's key check does: authenticate, then limit."""
    found = adm.authenticate(path, headers, None)
    if found is not None:
        await adm.limit(found)
    return found


def bearer(secret: str = SECRET) -> Headers:
    return Headers({"authorization": f"Bearer {secret}"})


async def test_a_request_without_a_valid_key_is_refused(autojump_clock: object) -> None:
    adm = admission(key())
    for headers in (Headers(), bearer("mk-wrong")):
        with pytest.raises(Unauthorized) as caught:
            adm.authenticate(CHAT, headers, "10.0.0.1")
        assert rejection_reason(caught.value) == "auth"
    found = adm.authenticate(CHAT, Headers({"x-api-key": SECRET}), "10.0.0.1")
    assert found is not None and found.name == "team"


async def test_local_paths_are_open_on_loopback_only(autojump_clock: object) -> None:
    adm = admission(key())
    assert adm.authenticate("/health", Headers(), "10.0.0.1") is None
    assert adm.authenticate("/metrics", Headers(), "127.0.0.1") is None
    with pytest.raises(Unauthorized):
        adm.authenticate("/metrics", Headers(), "10.0.0.1")


async def test_rpm_refuses_then_refills_with_time(autojump_clock: object) -> None:
    adm = admission(key(rpm=2))
    for _ in range(2):
        await admit(adm, bearer())
    with pytest.raises(RateLimited) as caught:
        await admit(adm, bearer())
    assert caught.value.headers["retry-after"] == "30"
    assert rejection_reason(caught.value) == "rate_limit"
    await trio.sleep(30)
    await admit(adm, bearer())


async def test_a_model_outside_the_allowlist_is_refused_and_refunded(
    autojump_clock: object,
) -> None:
    adm = admission(key(rpm=1, models=("gpt-*",)))
    found = await admit(adm, bearer())
    with pytest.raises(Forbidden) as caught:
        await adm.check_model(found, "claude-x")
    assert rejection_reason(caught.value) == "auth"
    found = await admit(adm, bearer())  # the refused request gave its unit back
    await adm.check_model(found, "gpt-4o")


def finished(
    the_key: GatewayKey | None, prompt: int, completion: int, elapsed: float
) -> RequestRecord:
    """The record of a JSON chat request served by ``openai:gpt-4o``."""
    served = Served(the_key, "gpt-4o", "openai:gpt-4o", "openai", "gpt-4o")
    return RequestRecord(
        "req_1", "POST", CHAT, 200, elapsed, served=served, tokens=Tokens(prompt, completion)
    )


async def test_a_record_counts_the_request_and_its_tokens(autojump_clock: object) -> None:
    records = Records(Config(), admission(key()))
    await records.record(finished(key(), 12, 5, elapsed=0.5))
    sample = records.metrics.registry.get_sample_value
    labels = {"endpoint": "chat_completions", "provider": "openai", "model": "gpt-4o"}
    assert sample("minillm_requests_total", {**labels, "status": "200"}) == 1
    tokens = {"provider": "openai", "model": "gpt-4o"}
    assert sample("minillm_tokens_total", {**tokens, "direction": "input"}) == 12
    assert sample("minillm_tokens_total", {**tokens, "direction": "output"}) == 5
    where = {"endpoint": "chat_completions", "provider": "openai"}
    assert sample("minillm_request_duration_seconds_sum", where) == 0.5


async def test_a_request_cancelled_before_answering_counts_as_499(autojump_clock: object) -> None:
    records = Records(Config(), admission(key()))
    notes = RequestNotes("req_1", started=0.0)
    notes.note_model("gpt-4o")
    await records.record(notes.record("POST", CHAT, wall=0.0, elapsed=0.1))
    sample = records.metrics.registry.get_sample_value
    labels = {"endpoint": "chat_completions", "provider": "", "model": ""}
    assert sample("minillm_requests_total", {**labels, "status": "499"}) == 1


async def test_tokens_used_are_charged_to_the_keys_tpm(autojump_clock: object) -> None:
    the_key = key(tpm=100)
    adm = admission(the_key)
    records = Records(Config(), adm)
    await admit(adm, bearer())
    await records.record(finished(the_key, 100, 50, elapsed=1.0))
    with pytest.raises(RateLimited) as caught:
        await admit(adm, bearer())
    assert int(caught.value.headers["retry-after"]) == 31  # 50 tokens over, at 100 a minute
    await trio.sleep(31)
    await admit(adm, bearer())
