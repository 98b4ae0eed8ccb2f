"""Provider health: the pure transitions over a fake clock, and LocalHealth over them."""

from __future__ import annotations

import pytest

from minillm.core.provider_state import (
    BreakerOpen,
    BreakerSettings,
    HealthState,
    KeysCooling,
    LocalHealth,
    acquire,
    after_answer,
    after_failure,
    breaker_status,
)

KEYS = ("key-a", "key-b")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def key_at(state: HealthState, now: float, *, alternatives: bool, start: int = 0) -> str | None:
    settings = BreakerSettings()
    key, after = acquire(state, KEYS, start, now, settings, alternatives=alternatives)
    assert after == state  # a closed breaker: choosing a key changes nothing
    return key


def test_keys_rotate_cool_and_recover() -> None:
    settings = BreakerSettings(key_cooldown=5)
    state = HealthState()
    assert [key_at(state, 0, alternatives=True, start=i) for i in range(3)] == [
        "key-a",
        "key-b",
        "key-a",
    ]
    # no hint: the 5 s guess
    state = after_answer(state, "key-a", 429, None, now=0, settings=settings)
    assert {key_at(state, 1, alternatives=False, start=i) for i in range(4)} == {"key-b"}
    # the provider's word: 10 s
    state = after_answer(state, "key-b", 429, 10, now=1, settings=settings)
    with pytest.raises(KeysCooling) as cooling:
        key_at(state, 2, alternatives=True)  # another target is left: go there
    assert cooling.value.retry_after == 3
    assert key_at(state, 2, alternatives=False, start=1) == "key-a"  # panic: guess ignored
    assert key_at(state, 6, alternatives=True, start=1) == "key-a"  # its guess is over
    assert {key_at(state, 12, alternatives=True, start=i) for i in range(2)} == set(KEYS)


def test_a_rest_on_the_providers_word_is_kept() -> None:
    settings = BreakerSettings()
    state = after_answer(HealthState(), "key-a", 429, 20, now=0, settings=settings)
    state = after_answer(state, "key-b", 429, 40, now=0, settings=settings)
    with pytest.raises(KeysCooling) as cooling:
        key_at(state, 1, alternatives=False)  # every key on the provider's word
    assert cooling.value.retry_after == 19
    # an older call's success
    assert after_answer(state, "key-a", 200, None, now=2, settings=settings) == state
    assert key_at(state, 21, alternatives=False) == "key-a"


def test_expired_rests_are_dropped_and_the_state_expires() -> None:
    settings = BreakerSettings(key_cooldown=5, cooldown=10)
    state = after_answer(HealthState(), "key-a", 429, None, now=0, settings=settings)
    assert state.expires(settings) == 5
    assert after_answer(state, "key-b", 200, None, now=6, settings=settings) == HealthState()
    opened = after_failure(HealthState(failures=4), 1, settings)
    assert opened.expires(settings) == 21  # open until 11, then a probe may be out 10 s


def test_breaker_opens_then_half_opens_for_one_probe() -> None:
    settings = BreakerSettings(failures=2, cooldown=10)

    def through(state: HealthState, now: float) -> HealthState:
        return acquire(state, (None,), 0, now, settings, alternatives=False)[1]

    state = after_failure(HealthState(), 0, settings)
    assert through(state, 0) == state
    state = after_failure(state, 1, settings)
    with pytest.raises(BreakerOpen) as closed:
        through(state, 5)
    assert closed.value.retry_after == 6  # until half-open
    assert breaker_status(state, 5) == "open"
    state = through(state, 11)  # the probe
    assert breaker_status(state, 11) == "half-open"
    with pytest.raises(BreakerOpen) as closed:
        through(state, 11.5)  # only one
    assert closed.value.retry_after == 1
    assert through(state, 21) != state  # a probe that never reported back is replaced
    state = after_failure(state, 12, settings)
    with pytest.raises(BreakerOpen):
        through(state, 13)
    state = through(state, 22)
    # any answer: the provider is up
    state = after_answer(state, None, 500, None, now=22, settings=settings)
    assert state == HealthState()


async def test_local_health_rejections_are_logged_once_per_disable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    key, good = "sk-bad-key-000000", "sk-good-key-00000"
    health = LocalHealth("p", (key, good), BreakerSettings(key_disable=300), clock)
    with caplog.at_level("WARNING", "minillm.providers"):
        for t in range(5):  # rejected again and again: logged once per key_disable
            clock.now = t
            await health.record_answer(key, 401, None)
        clock.now = 301
        await health.record_answer(key, 403, None)
    assert [r.getMessage().count("sk-...0000") for r in caplog.records] == [1, 1]
    assert key not in caplog.text
    clock.now = 302
    assert {await health.acquire(alternatives=False) for _ in range(4)} == {good}
    await health.record_answer(good, 401, None)
    with pytest.raises(KeysCooling):
        await health.acquire(alternatives=True)
    assert await health.acquire(alternatives=False) == key  # recovers soonest
    await health.record_answer(key, 200, None)  # it works again: no longer rejected
    assert await health.has_key() and await health.acquire(alternatives=True) == key
    assert await health.snapshot() == {
        "keys_available": 1,
        "keys_cooling": ["sk-...0000"],
        "breaker": "closed",
    }


async def test_local_health_logs_the_breaker_opening_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    health = LocalHealth("p", (), BreakerSettings(failures=1, cooldown=10), clock)
    with caplog.at_level("WARNING", "minillm.providers"):
        await health.record_failure()
        await health.record_failure()  # a call that was in flight: still open, not logged
    assert len(caplog.records) == 1
    with pytest.raises(BreakerOpen):
        await health.acquire(alternatives=False)
