"""The sharded connection pool: limits split exactly, least-loaded picking, counts released."""

from __future__ import annotations

import httpx
import pytest
import trio

from minillm.runtime.providers.pool import SHARD_SIZE, ShardedTransport, least_loaded, shard_limits
from upstream import FakeUpstream, Silent

_BODY = b'{"model": "gpt-4o-mini", "stream": true, "messages": []}'


def _totals(limits: list[httpx.Limits]) -> tuple[int, int]:
    return (
        sum(lim.max_connections or 0 for lim in limits),
        sum(lim.max_keepalive_connections or 0 for lim in limits),
    )


@pytest.mark.parametrize(
    ("connections", "keepalive", "shards", "largest"),
    [
        (4096, 4096, 64, 64),
        (4096, 512, 64, 64),
        (1000, 100, 16, 63),
        (100, 512, 2, 50),
        (64, 64, 1, 64),
        (4096, 3, 3, 1366),  # never a shard without keep-alive
    ],
)
def test_shard_limits_add_up_to_the_totals(
    connections: int, keepalive: int, shards: int, largest: int
) -> None:
    total = httpx.Limits(max_connections=connections, max_keepalive_connections=keepalive)
    limits = shard_limits(total)
    assert len(limits) == shards
    assert _totals(limits) == (connections, keepalive)
    sizes = [lim.max_connections or 0 for lim in limits]
    assert max(sizes) == largest and max(sizes) - min(sizes) <= 1
    assert min(lim.max_keepalive_connections or 0 for lim in limits) >= 1
    assert all(lim.keepalive_expiry == total.keepalive_expiry for lim in limits)
    assert SHARD_SIZE == 64


def test_unbounded_limits_are_one_shard() -> None:
    total = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    assert shard_limits(total) == [total]


def test_least_loaded_prefers_the_first_on_a_tie() -> None:
    assert least_loaded([0, 0, 0]) == 0
    assert least_loaded([2, 1, 1]) == 1
    assert least_loaded([3, 4, 0]) == 2


def _sharded(shards: int, per_shard: int) -> ShardedTransport:
    limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
    return ShardedTransport([httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)])


def _request(upstream: FakeUpstream) -> httpx.Request:
    return httpx.Request("POST", upstream.url + "/v1/chat/completions", content=_BODY)


async def test_open_streams_spread_and_closed_ones_release_their_shard(
    upstream: FakeUpstream,
) -> None:
    async with _sharded(shards=3, per_shard=4) as transport:
        upstream.push(*[Silent()] * 7)
        responses = [await transport.handle_async_request(_request(upstream)) for _ in range(7)]
        assert all(r.status_code == 200 for r in responses)
        assert transport.loads == [3, 2, 2]
        await responses[1].aclose()
        await responses[1].aclose()  # closing twice releases once
        await responses[4].aclose()
        assert transport.loads == [3, 0, 2]  # both were on shard 1
        upstream.push(Silent())
        extra = await transport.handle_async_request(_request(upstream))
        assert transport.loads == [3, 1, 2]  # the next request went to the lightest shard
        for r in [*responses, extra]:
            await r.aclose()
        assert transport.loads == [0, 0, 0]


async def test_a_light_load_stays_on_the_first_shard() -> None:
    """Sequential requests all go to shard 0, whose idle connection they reuse."""
    used: list[int] = []

    def shard(i: int) -> httpx.MockTransport:
        def answer(_: httpx.Request) -> httpx.Response:
            used.append(i)
            return httpx.Response(200, stream=httpx.ByteStream(b"{}"))  # unread, like a real one

        return httpx.MockTransport(answer)

    async with ShardedTransport([shard(i) for i in range(4)]) as transport:
        for _ in range(5):
            response = await transport.handle_async_request(httpx.Request("GET", "http://x/"))
            await response.aread()
            await response.aclose()
        assert transport.loads == [0, 0, 0, 0]
    assert used == [0] * 5


async def test_a_failed_send_releases_its_shard() -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    shards = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(2)]
    async with ShardedTransport(shards) as transport:
        with trio.fail_after(5), pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:1/"))
        assert transport.loads == [0, 0]
