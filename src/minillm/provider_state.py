"""Per-provider health: key rotation and cooldowns, circuit breaker.

Sans-I/O: every method takes ``now`` (a monotonic time, ``trio.current_time()``
in the gateway).  :class:`ProviderHealth` is the interface; :class:`LocalHealth`
keeps the state in this process.  Several gateway processes serving one team
can share it by implementing the same interface over a shared store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import count
from typing import Protocol

__all__ = ["BreakerSettings", "KeysCooling", "LocalHealth", "ProviderHealth", "mask_key"]

log = logging.getLogger("minillm.providers")


def mask_key(key: str) -> str:
    """``sk-...abcd``: enough to recognise a key in a log, never enough to use it."""
    return f"{key[:3]}...{key[-4:]}" if len(key) >= 12 else "***"


class KeysCooling(Exception):
    """Every key of the provider is cooling down; ``retry_after`` is the soonest recovery."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failures: int = 5
    cooldown: float = 30.0
    key_cooldown: float = 30.0
    key_disable: float = 300.0


class ProviderHealth(Protocol):
    def acquire_key(self, now: float) -> str | None: ...
    def cool_key(self, key: str | None, seconds: float | None, now: float) -> None: ...
    def disable_key(self, key: str | None, now: float) -> None: ...
    def has_key(self, now: float) -> bool: ...
    def allows(self, now: float) -> bool: ...
    def record_success(self) -> None: ...
    def record_failure(self, now: float) -> None: ...
    def snapshot(self, now: float) -> dict[str, object]: ...


class LocalHealth:
    """In-process :class:`ProviderHealth`.

    A keyless provider (Ollama, vLLM) is one key ``None`` for cooldown purposes.
    The breaker opens after ``failures`` consecutive connection failures or
    first-byte timeouts; after ``cooldown`` it lets one probe through
    (half-open): success closes it, failure opens it again.
    """

    def __init__(self, name: str, keys: tuple[str, ...], settings: BreakerSettings) -> None:
        self.name = name
        self._keys: tuple[str | None, ...] = keys or (None,)
        self._settings = settings
        self._until: dict[str | None, float] = {}
        self._turn = count()
        self._failures = 0
        self._open_until: float | None = None
        self._probe_started: float | None = None

    def acquire_key(self, now: float) -> str | None:
        """The next usable key, round-robin; :class:`KeysCooling` if none is."""
        n = len(self._keys)
        start = next(self._turn)
        for i in range(n):
            key = self._keys[(start + i) % n]
            if self._until.get(key, 0.0) <= now:
                return key
        raise KeysCooling(min(self._until.values()) - now)

    def has_key(self, now: float) -> bool:
        return any(self._until.get(k, 0.0) <= now for k in self._keys)

    def cool_key(self, key: str | None, seconds: float | None, now: float) -> None:
        wait = self._settings.key_cooldown if seconds is None else seconds
        self._until[key] = max(self._until.get(key, 0.0), now + wait)

    def disable_key(self, key: str | None, now: float) -> None:
        if self._until.get(key, 0.0) <= now:
            log.warning(
                "provider %s: key %s rejected; disabled for %ss",
                self.name,
                mask_key(key) if key else "(none)",
                self._settings.key_disable,
            )
        self._until[key] = now + self._settings.key_disable

    def allows(self, now: float) -> bool:
        """Whether the breaker lets a request through now.

        When half-open, only one caller (the probe) is let through; a probe
        that never reports back (cancelled) is replaced after ``cooldown``.
        """
        if self._open_until is None:
            return True
        if now < self._open_until:
            return False
        probe = self._probe_started
        if probe is not None and now - probe < self._settings.cooldown:
            return False
        self._probe_started = now
        return True

    def record_success(self) -> None:
        """The provider answered (any HTTP status): close the breaker."""
        self._failures = 0
        self._open_until = None
        self._probe_started = None

    def record_failure(self, now: float) -> None:
        """A connection failure or first-byte timeout."""
        self._failures += 1
        if self._probe_started is not None or self._failures >= self._settings.failures:
            if self._open_until is None or self._probe_started is not None:
                log.warning("provider %s: circuit open for %ss", self.name, self._settings.cooldown)
            self._open_until = now + self._settings.cooldown
            self._probe_started = None

    def snapshot(self, now: float) -> dict[str, object]:
        keys = [k for k in self._keys if k is not None]
        cooling = [mask_key(k) for k in keys if self._until.get(k, 0.0) > now]
        if self._open_until is None:
            breaker = "closed"
        else:
            breaker = "open" if now < self._open_until else "half-open"
        return {
            "keys_available": len(keys) - len(cooling),
            "keys_cooling": cooling,
            "breaker": breaker,
        }
