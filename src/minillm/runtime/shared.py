"""The stores several gateway processes share, when ``redis_url`` is configured.

Without it every store lives in its process (the default).  With it, the
Redis stores of :mod:`minillm.runtime.redis_state` (coredis is imported only
then: ``pip install 'minillm[redis]'``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from minillm.core.budget import SpendStore
from minillm.core.config import Config
from minillm.core.provider_state import BreakerSettings, ProviderHealth
from minillm.core.ratelimit import BucketStore

__all__ = ["SharedStores", "open_shared_stores"]


class SharedStores(Protocol):
    def health(
        self, name: str, keys: tuple[str, ...], settings: BreakerSettings
    ) -> ProviderHealth: ...

    def buckets(self) -> BucketStore: ...

    def spend(self) -> SpendStore: ...


@asynccontextmanager
async def open_shared_stores(
    config: Config, on_error: Callable[[], None]
) -> AsyncIterator[SharedStores | None]:
    """The shared stores of ``config.redis_url`` (None without one); ``on_error``
    counts the calls that failed."""
    if config.redis_url is None:
        yield None
        return
    from minillm.runtime.redis_state import open_redis_stores  # noqa: PLC0415 (optional)

    async with open_redis_stores(config, on_error) as stores:
        yield stores
