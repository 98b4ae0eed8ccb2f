"""Per-key request (rpm) and token (tpm) limits: token buckets behind a small store.

A bucket holds up to ``per_minute`` units and refills at ``per_minute / 60``
per second.  A request takes one unit of the rpm bucket.  Tokens are not
known before the reply, so a request is admitted while the tpm bucket is
not in debt, and its tokens are charged when it ends (the bucket may go
negative; ``Retry-After`` is the time until it is positive again).  Both
buckets are checked in one :meth:`BucketStore.acquire`: all or nothing.

:class:`BucketStore` is the seam for a shared store when several gateway
processes serve one team (:class:`~minillm.runtime.redis_state.RedisBuckets`:
a Lua script doing the same arithmetic, one round trip per check);
:class:`MemoryBuckets` is the in-process implementation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from minillm.core.auth import GatewayKey
from minillm.core.errors import RateLimited

__all__ = ["BucketStore", "MemoryBuckets", "RateLimiter", "Take"]


class Take(NamedTuple):
    """``amount`` units of the bucket ``bucket`` of size ``per_minute``."""

    bucket: str
    amount: float
    per_minute: int


class BucketStore(Protocol):
    """Atomic token-bucket operations on named buckets."""

    async def acquire(self, takes: Sequence[Take]) -> float:
        """Take every amount if each bucket holds it (and is positive): return 0.

        Otherwise take nothing and return the seconds until all would succeed.
        """
        ...

    async def charge(self, bucket: str, amount: float, per_minute: int) -> None:
        """Take ``amount`` unconditionally (the level may go below zero; a negative
        ``amount`` gives back, up to the bucket's size)."""
        ...


class MemoryBuckets:
    """In-process buckets: ``{name: (level, last refill time)}``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def _level(self, bucket: str, per_minute: int) -> tuple[float, float]:
        now = self._clock()
        level, then = self._buckets.get(bucket, (float(per_minute), now))
        return min(float(per_minute), level + (now - then) * per_minute / 60.0), now

    async def acquire(self, takes: Sequence[Take]) -> float:
        levels = [self._level(t.bucket, t.per_minute) for t in takes]
        wait = 0.0
        for take, (level, _) in zip(takes, levels, strict=True):
            need = max(take.amount, 1e-9)
            if level < need:
                wait = max(wait, (need - level) * 60.0 / take.per_minute)
        for take, (level, now) in zip(takes, levels, strict=True):
            self._buckets[take.bucket] = (level - (0.0 if wait else take.amount), now)
        return wait

    async def charge(self, bucket: str, amount: float, per_minute: int) -> None:
        level, now = self._level(bucket, per_minute)
        self._buckets[bucket] = (level - amount, now)


class RateLimiter:
    """Applies a key's ``rpm`` and ``tpm`` using a :class:`BucketStore`."""

    def __init__(self, store: BucketStore | None = None) -> None:
        self.store: BucketStore = store or MemoryBuckets()

    async def admit(self, key: GatewayKey) -> None:
        """Take one request; raise :class:`RateLimited` with ``Retry-After`` when over."""
        takes = []
        if key.tpm is not None:
            takes.append(Take(f"{key.name}\0tpm", 0, key.tpm))
        if key.rpm is not None:
            takes.append(Take(f"{key.name}\0rpm", 1, key.rpm))
        wait = await self.store.acquire(takes) if takes else 0.0
        if wait:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                headers={"retry-after": str(seconds), "retry-after-ms": str(math.ceil(wait * 1000))}
            )

    async def refund(self, key: GatewayKey) -> None:
        """Give back the request unit :meth:`admit` took (a request refused before any work)."""
        if key.rpm is not None:
            await self.store.charge(f"{key.name}\0rpm", -1, key.rpm)

    async def charge(self, key: GatewayKey, tokens: int) -> None:
        """Charge the tokens a finished request used to the key's tpm bucket."""
        if key.tpm is not None and tokens > 0:
            await self.store.charge(f"{key.name}\0tpm", tokens, key.tpm)
