"""Per-provider health: key rotation, key rests, circuit breaker.

Sans-I/O: every method takes ``now`` (a monotonic time, ``trio.current_time()``
in the gateway).  :class:`ProviderHealth` is the interface; :class:`LocalHealth`
keeps the state in this process.  Several gateway processes serving one team
can share it by implementing the same interface over a shared store.

Health chooses between alternatives; it never puts up a wall the provider did
not ask for.  A key *rests* after a 429 (for as long as the provider said, or a
short guess without a hint) or a 401/403 (rejected).  A resting key is skipped
while the provider has another key or the request another target; when nothing
else is left, the key that recovers soonest is used anyway (Envoy's panic
threshold), unless every key rests on the provider's explicit word.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import count
from typing import Literal, Protocol

__all__ = [
    "BreakerOpen",
    "BreakerSettings",
    "KeysCooling",
    "LocalHealth",
    "ProviderHealth",
    "mask_key",
]

log = logging.getLogger("minillm.providers")


def mask_key(key: str) -> str:
    """``sk-...abcd``: enough to recognise a key in a log, never enough to use it."""
    return f"{key[:3]}...{key[-4:]}" if len(key) >= 12 else "***"


class _NotNow(Exception):
    """The provider is not to be called now; ``retry_after`` is the soonest it may be."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class KeysCooling(_NotNow):
    """No key may be used now (see :meth:`ProviderHealth.acquire_key`)."""


class BreakerOpen(_NotNow):
    """The circuit breaker lets no call through now."""


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failures: int = 5
    cooldown: float = 30.0
    key_cooldown: float = 5.0
    key_disable: float = 300.0


class ProviderHealth(Protocol):
    def acquire_key(self, now: float, *, alternatives: bool) -> str | None:
        """A key to call the provider with; :class:`KeysCooling` when the caller should not.

        ``alternatives``: the request has another target to go to.
        """
        ...

    def has_key(self, now: float) -> bool:
        """Whether a key that is not resting is left."""
        ...

    def pass_breaker(self, now: float) -> None:
        """Let a call through the circuit breaker, or raise :class:`BreakerOpen`."""
        ...

    def record_answer(self, key: str | None, status: int, wait: float | None, now: float) -> None:
        """The provider answered ``status`` to a call made with ``key``.

        ``wait``: the seconds the provider explicitly asked to wait, if it did.
        """
        ...

    def record_failure(self, now: float) -> None:
        """A connection failure or first-byte timeout."""
        ...

    def snapshot(self, now: float) -> dict[str, object]: ...


_Reason = Literal["said", "guessed", "rejected"]


@dataclass(frozen=True, slots=True)
class _Rest:
    until: float
    reason: _Reason


class LocalHealth:
    """In-process :class:`ProviderHealth`.

    A keyless provider (Ollama, vLLM) is one key ``None``.  The breaker opens
    after ``failures`` consecutive connection failures or first-byte timeouts;
    after ``cooldown`` it lets one probe through (half-open): success closes
    it, failure opens it again.  Any HTTP answer counts as success: the
    provider is up.
    """

    def __init__(self, name: str, keys: tuple[str, ...], settings: BreakerSettings) -> None:
        self.name = name
        self._keys: tuple[str | None, ...] = keys or (None,)
        self._settings = settings
        self._rests: dict[str | None, _Rest] = {}
        self._logged: dict[str | None, float] = {}  # when a key's rejection was last logged
        self._turn = count()
        self._failures = 0
        self._open_until: float | None = None
        self._probe_started: float | None = None

    def _resting(self, key: str | None, now: float) -> _Rest | None:
        rest = self._rests.get(key)
        return rest if rest is not None and rest.until > now else None

    def acquire_key(self, now: float, *, alternatives: bool) -> str | None:
        """The next key that is not resting, round-robin.

        With every key resting: :class:`KeysCooling` (the soonest recovery)
        when the request has ``alternatives`` or every key rests on the
        provider's word; else the key (not rested on the provider's word) that
        recovers soonest.
        """
        n = len(self._keys)
        start = next(self._turn)
        rests: dict[str | None, _Rest] = {}
        for i in range(n):
            key = self._keys[(start + i) % n]
            rest = self._resting(key, now)
            if rest is None:
                return key
            rests[key] = rest
        guessed = {k: r.until for k, r in rests.items() if r.reason != "said"}
        if alternatives or not guessed:
            raise KeysCooling(min(r.until for r in rests.values()) - now)
        return min(guessed, key=guessed.__getitem__)

    def has_key(self, now: float) -> bool:
        return any(self._resting(k, now) is None for k in self._keys)

    def record_answer(self, key: str | None, status: int, wait: float | None, now: float) -> None:
        """Close the breaker; then by ``status``: a 429 rests the key for ``wait``
        (or the ``key_cooldown`` guess), a 401/403 rejects it for ``key_disable``,
        a success ends a guessed rest or a rejection."""
        self._failures = 0
        self._open_until = None
        self._probe_started = None
        if status == 429:
            reason: _Reason = "guessed" if wait is None else "said"
            seconds = self._settings.key_cooldown if wait is None else wait
            self._rests[key] = _Rest(now + seconds, reason)
        elif status in (401, 403):
            self._rests[key] = _Rest(now + self._settings.key_disable, "rejected")
            self._log_rejection(key, status, now)
        elif status < 400 and (rest := self._rests.get(key)) and rest.reason != "said":
            del self._rests[key]  # the provider's word stands, even against an older call

    def _log_rejection(self, key: str | None, status: int, now: float) -> None:
        """Once per ``key_disable`` seconds and key (masked)."""
        last = self._logged.get(key)
        if last is not None and now - last < self._settings.key_disable:
            return
        self._logged[key] = now
        log.warning(
            "provider %s: key %s rejected (HTTP %s); skipped for %ss while another is left",
            self.name,
            mask_key(key) if key else "(none)",
            status,
            self._settings.key_disable,
        )

    def pass_breaker(self, now: float) -> None:
        """When half-open, only one caller (the probe) is let through; a probe
        that never reports back (cancelled) is replaced after ``cooldown``.
        While a probe is out, callers are told to come back in a second."""
        if self._open_until is None:
            return
        if now < self._open_until:
            raise BreakerOpen(self._open_until - now)
        probe = self._probe_started
        if probe is not None and now - probe < self._settings.cooldown:
            raise BreakerOpen(1.0)
        self._probe_started = now

    def record_failure(self, now: float) -> None:
        self._failures += 1
        if self._probe_started is not None or self._failures >= self._settings.failures:
            if self._open_until is None or self._probe_started is not None:
                log.warning("provider %s: circuit open for %ss", self.name, self._settings.cooldown)
            self._open_until = now + self._settings.cooldown
            self._probe_started = None

    def snapshot(self, now: float) -> dict[str, object]:
        keys = [k for k in self._keys if k is not None]
        cooling = [mask_key(k) for k in keys if self._resting(k, now) is not None]
        if self._open_until is None:
            breaker = "closed"
        else:
            breaker = "open" if now < self._open_until else "half-open"
        return {
            "keys_available": len(keys) - len(cooling),
            "keys_cooling": cooling,
            "breaker": breaker,
        }
