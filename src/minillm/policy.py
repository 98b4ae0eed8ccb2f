"""Retry and failover decisions (sans-I/O).

Given one failed attempt, :meth:`RetryPolicy.decide` says whether to retry the
same target after a delay, move to the next target, or give up and answer
the error.  The Trio code in :mod:`minillm.gateway` only sleeps and calls.

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
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum

__all__ = ["Action", "Decision", "Failure", "RetryPolicy", "parse_retry_after"]

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
    def breaks_circuit(self) -> bool:
        """Connection failures and first-byte timeouts count towards the breaker."""
        return self.status is None

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
