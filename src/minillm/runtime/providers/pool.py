"""A provider's connection pool in shards, so that a request costs the same with 10 or
3000 streams open.

httpcore's pool walks all its connections and queued requests on every request and
every release: O(n) per event, most of a core with a thousand long streams open.
:class:`ShardedTransport` splits the pool into shards of at most :data:`SHARD_SIZE`
connections (each an ``httpx.AsyncHTTPTransport`` of its own) and sends each request
on the least-loaded shard, so a walk never covers more than one shard.  The shards'
limits add up to the configured totals; a request waits for a connection only when
every shard is full, as it would with one pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx

__all__ = ["SHARD_SIZE", "ShardedTransport", "least_loaded", "shard_limits"]

SHARD_SIZE = 64


def shard_limits(total: httpx.Limits, size: int = SHARD_SIZE) -> list[httpx.Limits]:
    """The limits of each shard: about ``max_connections / size`` shards (at most one
    per keep-alive connection) whose limits add up to ``total``'s."""
    connections, keepalive = total.max_connections, total.max_keepalive_connections
    if connections is None or keepalive is None:
        return [total]
    count = max(1, min(-(-connections // size), keepalive))
    return [
        httpx.Limits(
            max_connections=_share(connections, count, i),
            max_keepalive_connections=_share(keepalive, count, i),
            keepalive_expiry=total.keepalive_expiry,
        )
        for i in range(count)
    ]


def _share(total: int, count: int, i: int) -> int:
    """Shard ``i``'s part of ``total`` split ``count`` ways (parts differ by at most 1)."""
    return total // count + (i < total % count)


def least_loaded(loads: Sequence[int]) -> int:
    """The index of the smallest load; the first one on a tie, so that a light load
    stays on the first shards and keeps reusing their idle connections."""
    return loads.index(min(loads))


class ShardedTransport(httpx.AsyncBaseTransport):
    """Send each request on the least-loaded of ``shards``.

    A request counts against its shard from the moment it is sent until its
    response is closed (the response body is then fully read or abandoned).
    """

    def __init__(self, shards: Sequence[httpx.AsyncBaseTransport]) -> None:
        self._shards = list(shards)
        self.loads = [0] * len(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loads = self.loads
        i = least_loaded(loads)
        loads[i] += 1
        try:
            response = await self._shards[i].handle_async_request(request)
        except BaseException:
            loads[i] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Counted(response.stream, loads, i)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _Counted(httpx.AsyncByteStream):
    """A response body that releases its shard's count when closed (once)."""

    __slots__ = ("_index", "_loads", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, loads: list[int], index: int) -> None:
        self._stream = stream
        self._loads: list[int] | None = loads
        self._index = index

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()  # the shard's own iterator: no cost per chunk

    async def aclose(self) -> None:
        if self._loads is not None:
            self._loads[self._index] -= 1
            self._loads = None
        await self._stream.aclose()
