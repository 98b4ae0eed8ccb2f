"""Retry and failover decisions (sans-I/O).

Given one failed attempt, :meth:`RetryPolicy.decide` says whether to retry the
same target after a delay, move to the next target, or give up and answer
the error.  The Trio code in :mod:`minillm.runtime.gateway` only sleeps and calls.

Rules:

* never retried (the request itself is wrong): 400, 404, 413, 422 and any
  other 4xx not listed below -> give up with that error;
* retried on the same target with backoff: connection errors, timeouts before
  the first byte, 5xx and 529 — up to ``retries`` times, then next target;
* 429 and 401/403 are about the *key*: the caller cools or disables the key
  and retries at once with another key, or moves on when none is left;
* backoff is exponential with full jitter (``base * 2**n``, capped), but a
  provider's ``Retry-After`` / ``retry-after-ms`` wins; a wait that does not
  fit the remaining deadline moves to the next target instead.

:func:`provider_wait` reads how long a provider asked the gateway to wait:
``retry-after-ms`` / ``Retry-After``, and for a 429 without them the
rate-limit reset headers (OpenAI's ``x-ratelimit-reset-requests`` /
``-tokens`` durations such as ``6m0s``, Anthropic's
``anthropic-ratelimit-*-reset`` RFC 3339 times).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import Enum

__all__ = [
    "KEY_STATUSES",
    "Action",
    "Decision",
    "Failure",
    "RetryPolicy",
    "parse_duration",
    "parse_retry_after",
    "provider_wait",
    "rate_limit_reset",
]

KEY_STATUSES = frozenset({401, 403, 429})


class Action(Enum):
    RETRY = "retry"
    NEXT_TARGET = "next_target"
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt: an HTTP status, or None for a connection error/timeout."""

    status: int | None
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in KEY_STATUSES


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 2
    base: float = 0.25
    cap: float = 8.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**retry)]."""
        return rng.uniform(0.0, min(self.cap, self.base * 2**retry))

    def decide(
        self,
        failure: Failure,
        *,
        retry: int,
        remaining: float,
        key_available: bool,
        rng: random.Random,
    ) -> Decision:
        """What to do after ``failure``, the ``retry``-th retry of this target being next.

        ``key_available`` tells whether the provider still has a usable key
        after the caller cooled or disabled the failing one.
        """
        if not failure.retryable:
            return Decision(Action.GIVE_UP)
        if failure.status in KEY_STATUSES:
            # Another key may succeed at once; without one, try the next target.
            return Decision(Action.RETRY if key_available else Action.NEXT_TARGET)
        if retry > self.retries:
            return Decision(Action.NEXT_TARGET)
        delay = failure.retry_after
        if delay is None:
            delay = self.backoff(retry - 1, rng)
        if delay >= remaining:
            return Decision(Action.NEXT_TARGET)
        return Decision(Action.RETRY, delay)


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date).

    ``now`` is the current wall-clock time (``time.time()``), for dates.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        seconds = _number(lowered["retry-after-ms"])
        return None if seconds is None else seconds / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is None:
        try:
            seconds = max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError, OverflowError):
            return None
    return seconds


def _number(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def provider_wait(status: int, headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the provider explicitly asked to wait before the next call, or None.

    ``retry-after-ms`` / ``Retry-After`` first; for a 429 without them, its
    rate-limit reset headers (:func:`rate_limit_reset`).  Those are sent on
    every OpenAI answer, so other statuses ignore them.  ``now`` is
    ``time.time()``.
    """
    wait = parse_retry_after(headers, now)
    if wait is None and status == 429:
        wait = rate_limit_reset(headers, now)
    return wait


# OpenAI: x-ratelimit-reset-requests (duration) with x-ratelimit-remaining-requests;
# Anthropic: anthropic-ratelimit-requests-reset (RFC 3339) with ...-requests-remaining.
_OPENAI_RESET = re.compile(r"x-ratelimit-reset-(requests|tokens)")
_ANTHROPIC_RESET = re.compile(r"anthropic-ratelimit-([a-z-]+)-reset")


def rate_limit_reset(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until the rate limit that refused a call resets, from the reset headers.

    A limit whose ``remaining`` header says 0 is the one that was hit: the wait
    is the latest reset among those.  When none says so, the soonest reset
    (the gateway never waits longer than the provider asked).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    hit: list[float] = []
    other: list[float] = []
    for name, value in lowered.items():
        if match := _OPENAI_RESET.fullmatch(name):
            seconds = parse_duration(value)
            remaining = lowered.get(f"x-ratelimit-remaining-{match[1]}")
        elif match := _ANTHROPIC_RESET.fullmatch(name):
            seconds = _until(value, now)
            remaining = lowered.get(f"anthropic-ratelimit-{match[1]}-remaining")
        else:
            continue
        if seconds is not None:
            exhausted = remaining is not None and _number(remaining) == 0
            (hit if exhausted else other).append(seconds)
    if hit:
        return max(hit)
    return min(other, default=None)


_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_DURATION = re.compile(f"(?:{_PART.pattern})+")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3}


def parse_duration(value: str) -> float | None:
    """Seconds in a Go-style duration (``6m0s``, ``20ms``, ``1.5s``, ``1h2m``), or None.

    A bare number is seconds.
    """
    value = value.strip()
    if not _DURATION.fullmatch(value):
        return _number(value)
    return sum(float(n) * _UNIT[unit] for n, unit in _PART.findall(value))


def _until(value: str, now: float) -> float | None:
    """Seconds from ``now`` until an RFC 3339 time (never negative), or None."""
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return max(0.0, at.timestamp() - now)
