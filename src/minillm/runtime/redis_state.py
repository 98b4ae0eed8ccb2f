"""Gateway state shared through Redis: rate-limit buckets, provider health, spend.

Each store implements the same interface as its in-process twin and keeps
that twin as its fallback: when Redis does not answer in time
(:class:`~minillm.runtime.redis_link.SharedStateDown`) the request is served
with this process's state.

- Buckets (``{prefix}rl:{<key>}:rpm|tpm``): one Lua script per check (both
  buckets), the arithmetic of :class:`~minillm.core.ratelimit.MemoryBuckets` on Redis's clock.
  A bucket expires when it would be full again (absent means full).
- Provider health (``{prefix}health:{provider}``): the
  :class:`~minillm.core.provider_state.HealthState`, changed by the same pure
  functions and written back with a compare-and-set script, so a half-open
  breaker lets one probe through for the whole fleet.  It expires when it is as
  good as a fresh state.  Provider keys are stored as short hashes.
- Spend (``{prefix}spend:{key}:{window}``): one float per key and budget window,
  expiring a day after the window ends.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import orjson

from minillm.core.budget import MemorySpend, Window
from minillm.core.config import Config
from minillm.core.provider_state import (
    CLOSED,
    BreakerSettings,
    HealthState,
    MemoryCell,
    Rest,
    StoredHealth,
)
from minillm.core.ratelimit import MemoryBuckets, Take
from minillm.runtime.redis_link import Redis, RedisLink, SharedStateDown, open_redis

__all__ = ["RedisBuckets", "RedisCell", "RedisSpend", "RedisStores", "open_redis_stores"]

T = TypeVar("T")

_BUCKETS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local levels, wait = {}, 0
for i, key in ipairs(KEYS) do
  local amount, size = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local level = size
  local saved = redis.call('HMGET', key, 'level', 'at')
  if saved[1] then
    level = math.min(size, tonumber(saved[1]) + (now - tonumber(saved[2])) * size / 60)
  end
  levels[i] = level
  local need = math.max(amount, 1e-9)
  if ARGV[1] == 'acquire' and level < need then
    wait = math.max(wait, (need - level) * 60 / size)
  end
end
for i, key in ipairs(KEYS) do
  local amount, size = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local level = levels[i]
  if wait == 0 then level = level - amount end
  local full_ms = math.ceil((size - level) * 60000 / size)
  if full_ms <= 0 then
    redis.call('DEL', key)
  else
    redis.call('HSET', key, 'level', tostring(level), 'at', tostring(now))
    redis.call('PEXPIRE', key, full_ms + 1000)
  end
end
return tostring(wait)
"""

_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return {0, current} end
if ARGV[3] == '0' then redis.call('DEL', KEYS[1])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return {1}
"""

_ADD = """
local sum = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return sum
"""


class RedisBuckets:
    """:class:`~minillm.core.ratelimit.BucketStore` in Redis: exact across processes."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._script = link.client.register_script(_BUCKETS)
        self.local = MemoryBuckets()

    async def _run(self, mode: str, takes: Sequence[Take]) -> float:
        keys = [self._key(t.bucket) for t in takes]
        args: list[str | float] = [mode]
        for take in takes:
            args += [take.amount, take.per_minute]

        async def op(_: Redis) -> float:
            return float(await self._script(keys=keys, args=args))

        return await self._link.call(op)

    def _key(self, bucket: str) -> str:
        """``minillm:rl:{team}:rpm`` (a key's buckets in one Cluster slot)."""
        name, _, kind = bucket.rpartition("\0")
        return self._link.key("rl", f"{{{name}}}", kind)

    async def acquire(self, takes: Sequence[Take]) -> float:
        try:
            return await self._run("acquire", takes)
        except SharedStateDown:
            return await self.local.acquire(takes)

    async def charge(self, bucket: str, amount: float, per_minute: int) -> None:
        try:
            await self._run("charge", [Take(bucket, amount, per_minute)])
        except SharedStateDown:
            await self.local.charge(bucket, amount, per_minute)


class RedisCell:
    """A :class:`~minillm.core.provider_state.StateCell` in one Redis key; the last state
    read or written is kept in this process, to serve from when Redis is down."""

    def __init__(
        self, link: RedisLink, key: str, keys: tuple[str, ...], settings: BreakerSettings
    ) -> None:
        self._link = link
        self._key = key
        self._settings = settings
        self._ids: Mapping[str | None, str] = {k: _key_id(k) for k in (*keys, None)}
        self._keys = {i: k for k, i in self._ids.items()}
        self._cas = link.client.register_script(_COMPARE_AND_SET)
        self.local = MemoryCell()

    async def load(self) -> HealthState:
        try:
            raw = await self._link.call(lambda redis: redis.get(self._key))
        except SharedStateDown:
            return self.local.state
        self.local.state = self._decode(raw)
        return self.local.state

    async def update(self, change: Callable[[HealthState], tuple[T, HealthState]]) -> T:
        try:
            return await self._link.call(lambda redis: self._update(redis, change))
        except SharedStateDown:
            return await self.local.update(change)

    async def _update(
        self, redis: Redis, change: Callable[[HealthState], tuple[T, HealthState]]
    ) -> T:
        """Read, change, compare-and-set; again from what another process wrote
        (bounded by the link's time bound)."""
        raw = await redis.get(self._key)
        while True:
            state = self._decode(raw)
            result, new = change(state)
            if new == state:
                self.local.state = state
                return result
            ttl = 0 if new == CLOSED else self._ttl_ms(new)
            args: list[bytes | int] = [raw or b"", self._encode(new), ttl]
            answer: list[object] = await self._cas(keys=[self._key], args=args)
            if answer[0] == 1:
                self.local.state = new
                return result
            raw = answer[1] if len(answer) > 1 and isinstance(answer[1], bytes) else None

    def _ttl_ms(self, state: HealthState) -> int:
        """Until the state expires, plus ``cooldown`` (a failure count alone is
        forgotten after that)."""
        now = time.time()
        left = max((state.expires(self._settings) or now) - now, 0.0)
        return math.ceil((left + self._settings.cooldown) * 1000)

    def _encode(self, state: HealthState) -> bytes:
        rests = [[self._ids[k], r.until, r.reason] for k, r in state.rests.items()]
        return orjson.dumps(
            {"r": rests, "f": state.failures, "o": state.open_until, "p": state.probe_started}
        )

    def _decode(self, raw: bytes | None) -> HealthState:
        if not raw:
            return CLOSED
        data = orjson.loads(raw)
        rests = {self._keys[i]: Rest(until, why) for i, until, why in data["r"] if i in self._keys}
        return HealthState(rests, data["f"], data["o"], data["p"])


def _key_id(key: str | None) -> str:
    """A provider key as stored in Redis: 12 hex digits of its SHA-256."""
    return "-" if key is None else hashlib.sha256(key.encode()).hexdigest()[:12]


class RedisSpend:
    """:class:`~minillm.core.budget.SpendStore` in Redis."""

    _DAY = 86400

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._add = link.client.register_script(_ADD)
        self.local = MemorySpend()

    async def spent(self, key: str, window: Window) -> float:
        name = self._link.key("spend", key, window.id)

        async def op(redis: Redis) -> float:
            return float(await redis.get(name) or 0.0)

        try:
            return await self._link.call(op)
        except SharedStateDown:
            return await self.local.spent(key, window)

    async def add(self, key: str, window: Window, usd: float) -> None:
        name = self._link.key("spend", key, window.id)
        expire_at = int(window.end) + self._DAY

        async def op(_: Redis) -> object:
            return await self._add(keys=[name], args=[repr(usd), expire_at])

        try:
            await self._link.call(op)
        except SharedStateDown:
            await self.local.add(key, window, usd)


@asynccontextmanager
async def open_redis_stores(
    config: Config, on_error: Callable[[], None]
) -> AsyncIterator[RedisStores]:
    """The stores over a connection to ``config.redis_url``."""
    assert config.redis_url is not None
    bound = config.redis_timeout
    async with open_redis(config.redis_url, config.redis_prefix, on_error, bound=bound) as link:
        yield RedisStores(link)


@dataclass(frozen=True, slots=True)
class RedisStores:
    """The Redis-backed stores of one process (a
    :class:`~minillm.runtime.shared.SharedStores`)."""

    link: RedisLink

    def health(self, name: str, keys: tuple[str, ...], settings: BreakerSettings) -> StoredHealth:
        cell = RedisCell(self.link, self.link.key("health", name), keys, settings)
        return StoredHealth(name, keys, settings, cell)

    def buckets(self) -> RedisBuckets:
        return RedisBuckets(self.link)

    def spend(self) -> RedisSpend:
        return RedisSpend(self.link)
