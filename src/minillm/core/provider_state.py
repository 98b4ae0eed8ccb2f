"""Per-provider health: key rotation, key rests, circuit breaker.

The decisions are pure functions over a small frozen value,
:class:`HealthState` (which keys rest until when and why, the breaker), and
take ``now``: a wall-clock time (``time.time()``), since the state may be
shared by processes on several machines.  :class:`ProviderHealth` is the async
interface the gateway awaits; :class:`StoredHealth` implements it over a
:class:`StateCell`, the place the state lives: :class:`MemoryCell` in this
process (:class:`LocalHealth`, the default) or a shared store
(:mod:`minillm.runtime.redis_state`), which applies the same functions.

Health chooses between alternatives; it never puts up a wall the provider did
not ask for.  A key *rests* after a 429 (for as long as the provider said, or a
short guess without a hint) or a 401/403 (rejected).  A resting key is skipped
while the provider has another key or the request another target; when nothing
else is left, the key that recovers soonest is used anyway (Envoy's panic
threshold), unless every key rests on the provider's explicit word.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from itertools import count
from typing import Literal, Protocol, TypeVar

__all__ = [
    "BreakerOpen",
    "BreakerSettings",
    "HealthState",
    "KeysCooling",
    "LocalHealth",
    "MemoryCell",
    "ProviderHealth",
    "Rest",
    "StateCell",
    "StoredHealth",
    "acquire",
    "after_answer",
    "after_failure",
    "breaker_status",
    "mask_key",
]

log = logging.getLogger("minillm.providers")

T = TypeVar("T")
Reason = Literal["said", "guessed", "rejected"]
Clock = Callable[[], float]


def mask_key(key: str) -> str:
    """``sk-...abcd``: enough to recognise a key in a log, never enough to use it."""
    return f"{key[:3]}...{key[-4:]}" if len(key) >= 12 else "***"


class _NotNow(Exception):
    """The provider is not to be called now; ``retry_after`` is the soonest it may be."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class KeysCooling(_NotNow):
    """No key may be used now (see :func:`acquire`)."""


class BreakerOpen(_NotNow):
    """The circuit breaker lets no call through now."""


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failures: int = 5
    cooldown: float = 30.0
    key_cooldown: float = 5.0
    key_disable: float = 300.0


@dataclass(frozen=True, slots=True)
class Rest:
    """A key rests until ``until`` (wall-clock seconds) for ``reason``."""

    until: float
    reason: Reason


@dataclass(frozen=True, slots=True)
class HealthState:
    """One provider's health.  Never mutated: the functions below return a new one.

    The breaker opens after ``failures`` consecutive connection failures or
    first-byte timeouts; after ``cooldown`` it lets one probe through
    (half-open): success closes it, failure opens it again.
    """

    rests: Mapping[str | None, Rest] = field(default_factory=dict)
    failures: int = 0
    open_until: float | None = None
    probe_started: float | None = None

    def resting(self, key: str | None, now: float) -> Rest | None:
        rest = self.rests.get(key)
        return rest if rest is not None and rest.until > now else None

    def expires(self, settings: BreakerSettings) -> float | None:
        """When this state is as good as a fresh one (None: it already is, bar
        a failure count, which a shared store may forget after ``cooldown``)."""
        ends = [r.until for r in self.rests.values()]
        if self.open_until is not None:
            ends.append(max(self.open_until, self.probe_started or 0.0) + settings.cooldown)
        return max(ends, default=None)


CLOSED = HealthState()


def acquire(
    state: HealthState,
    keys: tuple[str | None, ...],
    start: int,
    now: float,
    settings: BreakerSettings,
    *,
    alternatives: bool,
) -> tuple[str | None, HealthState]:
    """A key to call with and the state after passing the breaker.

    The key first (a half-open breaker's probe is not wasted on no key): the
    next one not resting, round-robin from ``start``.  With every key resting,
    :class:`KeysCooling` (the soonest recovery) when the request has
    ``alternatives`` (another target) or every key rests on the provider's
    word; else the key (not rested on the provider's word) that recovers
    soonest.  Then the breaker: :class:`BreakerOpen` while open; half-open, one
    caller (the probe) is let through and a probe that never reports back
    (cancelled) is replaced after ``cooldown``; while a probe is out, callers
    are told to come back in a second.
    """
    rests: dict[str | None, Rest] = {}
    chosen: str | None = None
    for i in range(len(keys)):
        key = keys[(start + i) % len(keys)]
        rest = state.resting(key, now)
        if rest is None:
            chosen = key
            break
        rests[key] = rest
    else:
        guessed = {k: r.until for k, r in rests.items() if r.reason != "said"}
        if alternatives or not guessed:
            raise KeysCooling(min(r.until for r in rests.values()) - now)
        chosen = min(guessed, key=guessed.__getitem__)
    if state.open_until is None:
        return chosen, state
    if now < state.open_until:
        raise BreakerOpen(state.open_until - now)
    probe = state.probe_started
    if probe is not None and now - probe < settings.cooldown:
        raise BreakerOpen(1.0)
    return chosen, replace(state, probe_started=now)


def after_answer(
    state: HealthState,
    key: str | None,
    status: int,
    wait: float | None,
    *,
    now: float,
    settings: BreakerSettings,
) -> HealthState:
    """The provider answered ``status`` to a call made with ``key``: the breaker
    closes (any answer: the provider is up); then a 429 rests the key for
    ``wait`` (the provider's word) or the ``key_cooldown`` guess, a 401/403
    rejects it for ``key_disable``, a success ends a guessed rest or a
    rejection (the provider's word stands, even against an older call)."""
    rests = {k: r for k, r in state.rests.items() if r.until > now}
    if status == 429:
        rests[key] = Rest(
            now + (settings.key_cooldown if wait is None else wait),
            "guessed" if wait is None else "said",
        )
    elif status in (401, 403):
        rests[key] = Rest(now + settings.key_disable, "rejected")
    elif status < 400 and (rest := rests.get(key)) and rest.reason != "said":
        del rests[key]
    return HealthState(rests)


def after_failure(state: HealthState, now: float, settings: BreakerSettings) -> HealthState:
    """A connection failure or first-byte timeout: the breaker opens at the
    ``failures``-th in a row, or again when the probe fails."""
    failures = state.failures + 1
    if state.probe_started is None and failures < settings.failures:
        return replace(state, failures=failures)
    return replace(state, failures=failures, open_until=now + settings.cooldown, probe_started=None)


def breaker_status(state: HealthState, now: float) -> str:
    if state.open_until is None:
        return "closed"
    return "open" if now < state.open_until else "half-open"


class StateCell(Protocol):
    """Where one provider's :class:`HealthState` lives."""

    async def load(self) -> HealthState: ...

    async def update(self, change: Callable[[HealthState], tuple[T, HealthState]]) -> T:
        """Apply ``change`` atomically; its result.  What it raises propagates and
        nothing is written."""
        ...


class MemoryCell:
    """The state in this process."""

    def __init__(self) -> None:
        self.state = CLOSED

    async def load(self) -> HealthState:
        return self.state

    async def update(self, change: Callable[[HealthState], tuple[T, HealthState]]) -> T:
        result, self.state = change(self.state)
        return result


class ProviderHealth(Protocol):
    async def acquire(self, *, alternatives: bool) -> str | None:
        """A key to call the provider with, past the breaker; raises
        :class:`KeysCooling` or :class:`BreakerOpen` when the caller should not.

        ``alternatives``: the request has another target to go to.
        """
        ...

    async def has_key(self) -> bool:
        """Whether a key that is not resting is left."""
        ...

    async def record_answer(self, key: str | None, status: int, wait: float | None) -> None:
        """The provider answered ``status`` to a call made with ``key``.

        ``wait``: the seconds the provider explicitly asked to wait, if it did.
        """
        ...

    async def record_failure(self) -> None:
        """A connection failure or first-byte timeout."""
        ...

    async def snapshot(self) -> dict[str, object]: ...


class StoredHealth:
    """:class:`ProviderHealth` over a :class:`StateCell`; a keyless provider
    (Ollama, vLLM) is one key ``None``.  Logging and the round-robin turn stay
    in this process."""

    def __init__(
        self,
        name: str,
        keys: tuple[str, ...],
        settings: BreakerSettings,
        cell: StateCell,
        clock: Clock = time.time,
    ) -> None:
        self.name = name
        self._keys: tuple[str | None, ...] = keys or (None,)
        self._settings = settings
        self._cell = cell
        self._clock = clock
        self._logged: dict[str | None, float] = {}  # when a key's rejection was last logged
        self._turn = count()

    async def acquire(self, *, alternatives: bool) -> str | None:
        start, settings = next(self._turn), self._settings

        def change(state: HealthState) -> tuple[str | None, HealthState]:
            return acquire(
                state, self._keys, start, self._clock(), settings, alternatives=alternatives
            )

        return await self._cell.update(change)

    async def has_key(self) -> bool:
        state, now = await self._cell.load(), self._clock()
        return any(state.resting(k, now) is None for k in self._keys)

    async def record_answer(self, key: str | None, status: int, wait: float | None) -> None:
        now = self._clock()

        def change(state: HealthState) -> tuple[None, HealthState]:
            return None, after_answer(state, key, status, wait, now=now, settings=self._settings)

        await self._cell.update(change)
        if status in (401, 403):
            self._log_rejection(key, status, now)

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

    async def record_failure(self) -> None:
        now = self._clock()

        def change(state: HealthState) -> tuple[bool, HealthState]:
            after = after_failure(state, now, self._settings)
            opened = state.open_until is None or state.probe_started is not None
            return opened and after.open_until is not None, after

        if await self._cell.update(change):
            log.warning("provider %s: circuit open for %ss", self.name, self._settings.cooldown)

    async def snapshot(self) -> dict[str, object]:
        state, now = await self._cell.load(), self._clock()
        keys = [k for k in self._keys if k is not None]
        cooling = [mask_key(k) for k in keys if state.resting(k, now) is not None]
        return {
            "keys_available": len(keys) - len(cooling),
            "keys_cooling": cooling,
            "breaker": breaker_status(state, now),
        }


class LocalHealth(StoredHealth):
    """:class:`ProviderHealth` kept in this process (the default)."""

    def __init__(
        self, name: str, keys: tuple[str, ...], settings: BreakerSettings, clock: Clock = time.time
    ) -> None:
        super().__init__(name, keys, settings, MemoryCell(), clock)
