"""The connection to the shared state (Redis), bounded and never a single point of failure.

Every call through :class:`RedisLink` is bounded (``redis_timeout``, 50 ms by default).  A call
that fails or times out raises :class:`SharedStateDown`: the caller serves
with its local state.  The failure is counted, logged once, and Redis is left
alone for ``BACKOFF`` seconds (calls then fail at once, without I/O); the next
call after that tries again, and the first that succeeds logs the recovery.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any, TypeVar

import coredis
import trio
from coredis.connection import TCPLocation
from coredis.exceptions import RedisError
from coredis.retry import NoRetryPolicy

from minillm.core.redis_url import Cluster, Sentinel, Single, parse_redis_url

__all__ = ["BACKOFF", "RedisLink", "SharedStateDown", "open_redis"]

log = logging.getLogger("minillm.shared")

T = TypeVar("T")
BACKOFF = 1.0  # seconds Redis is left alone after a failure
Redis = coredis.client.Client[bytes]
"""A client of one server, a Sentinel-watched primary, or a Cluster."""


class SharedStateDown(Exception):
    """Redis did not answer in time (or is being left alone): use the local state."""


class RedisLink:
    """One client and the prefix of every key; ``on_error`` counts failures."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        on_error: Callable[[], None],
        *,
        bound: float,
        backoff: float = BACKOFF,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._on_error = on_error
        self._bound = bound
        self._backoff = backoff
        self._down_until: float | None = None

    def key(self, *parts: str) -> str:
        """``minillm:rl:team-a:rpm``: every key under the prefix."""
        return self.prefix + ":".join(parts)

    async def call(self, op: Callable[[Redis], Awaitable[T]]) -> T:
        """``op(client)`` within the bound; :class:`SharedStateDown` when it fails."""
        if self._down_until is not None and trio.current_time() < self._down_until:
            raise SharedStateDown
        try:
            with trio.fail_after(self._bound):
                result = await op(self.client)
        except (RedisError, OSError, trio.TooSlowError) as exc:
            self._on_error()
            if self._down_until is None:
                log.warning(
                    "shared state: Redis failed (%s); serving with this process's state"
                    " until it answers again",
                    type(exc).__name__,
                )
            self._down_until = trio.current_time() + self._backoff
            raise SharedStateDown from exc
        if self._down_until is not None:
            log.warning("shared state: Redis answers again")
            self._down_until = None
        return result


@asynccontextmanager
async def open_redis(
    url: str, prefix: str, on_error: Callable[[], None], *, bound: float
) -> AsyncIterator[RedisLink]:
    """A :class:`RedisLink` to ``url`` (a form of :mod:`minillm.core.redis_url`)
    whose calls take at most ``bound`` seconds.

    Opening connects (within a second), so that the first request does not pay
    for it; an unreachable server is left to the first call to report.
    """
    async with _client(url) as client:
        with trio.move_on_after(1.0), suppress(RedisError, OSError):
            await client.ping()
        yield RedisLink(client, prefix, on_error, bound=bound)


@asynccontextmanager
async def _client(url: str) -> AsyncIterator[Redis]:
    """The open client of ``url``'s target; no call retries (the link falls back instead)."""
    options: dict[str, Any] = {"retry_policy": NoRetryPolicy(), "connect_timeout": 1.0}
    client: Redis
    async with AsyncExitStack() as stack:
        match parse_redis_url(url):
            case Single(url=single):
                client = coredis.Redis.from_url(single, **options)
            case Cluster(url=node):
                client = coredis.RedisCluster.from_url(node, **options)
            case Sentinel() as target:
                nodes = [TCPLocation(host, port) for host, port in target.nodes]
                sentinels = await stack.enter_async_context(coredis.Sentinel(nodes, **options))
                client = sentinels.primary_for(
                    target.service,
                    db=target.db,
                    username=target.username,
                    password=target.password,
                )
        nursery = await stack.enter_async_context(trio.open_nursery())
        await nursery.start(_keep_open, client)
        yield client
        nursery.cancel_scope.cancel()


async def _keep_open(client: Redis, *, task_status: trio.TaskStatus[None]) -> None:
    """Keep ``client`` open.  A Cluster client cannot open while no node answers (its calls
    fail meanwhile: the link serves locally), so opening is tried again every ``BACKOFF``
    seconds; started after the first try."""
    while True:
        with suppress(RedisError, OSError):
            async with client:
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                await trio.sleep_forever()
        task_status.started()
        task_status = trio.TASK_STATUS_IGNORED
        await trio.sleep(BACKOFF)
