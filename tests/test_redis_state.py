"""The Redis stores against a real server: the bucket script does MemoryBuckets'
arithmetic, the health cell shares one state (one probe for the fleet), keys expire,
a unix:// URL works, a server (Sentinel, Cluster) that is gone costs one bounded,
counted failure, and a Cluster that comes up late is joined."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from minillm.core.provider_state import BreakerOpen, BreakerSettings, StoredHealth
from minillm.core.ratelimit import MemoryBuckets, Take
from minillm.runtime.redis_link import RedisLink, open_redis
from minillm.runtime.redis_state import RedisBuckets, RedisCell
from redis_fixtures import ClusterNode, RedisServer

BOUND = 1.0  # a loaded test machine may be slow; outages are tested with the default


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def link(redis_server: RedisServer) -> AsyncIterator[RedisLink]:
    errors: list[None] = []
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    async with open_redis(redis_server.url, prefix, errors.append, bound=BOUND) as link:
        yield link
    assert not errors


# (operation, amount, per minute): the same sequence on both stores
OPS = [
    ("acquire", 1, 3), ("acquire", 1, 3), ("acquire", 1, 3), ("acquire", 1, 3),
    ("charge", -1, 3), ("acquire", 1, 3),
    ("acquire", 0, 60), ("charge", 100, 60), ("acquire", 0, 60), ("charge", -30, 60),
    ("acquire", 0, 60),
]  # fmt: skip


async def test_the_bucket_script_does_the_memory_arithmetic(link: RedisLink) -> None:
    shared, local = RedisBuckets(link), MemoryBuckets(clock=lambda: 0.0)
    for op, amount, per_minute in OPS:
        bucket = f"team\0{per_minute}"
        if op == "acquire":
            take = [Take(bucket, amount, per_minute)]
            assert await shared.acquire(take) == pytest.approx(await local.acquire(take), abs=0.05)
        else:
            await shared.charge(bucket, amount, per_minute)
            await local.charge(bucket, amount, per_minute)
    ttl = await link.client.pttl(link.key("rl", "{team}", "60"))
    assert 70_000 < ttl <= 71_000  # 10 tokens in debt, 60 a minute: full again in 70 s
    for store in (shared, local):  # given back beyond full: the bucket is gone
        await store.charge("team\x003", -5, 3)
    assert await link.client.exists([link.key("rl", "{team}", "3")]) == 0
    both = [Take("team\x003", 1, 3), Take("team\x0060", 0, 60)]  # all or nothing
    assert await shared.acquire(both) == pytest.approx(await local.acquire(both), abs=0.05)


async def test_health_is_one_state_with_one_probe_for_the_fleet(link: RedisLink) -> None:
    clock = FakeClock()
    settings = BreakerSettings(failures=2, cooldown=10)
    keys = ("sk-provider-key-0001",)

    def process() -> StoredHealth:
        cell = RedisCell(link, link.key("health", "p"), keys, settings)
        return StoredHealth("p", keys, settings, cell, clock)

    one, two = process(), process()
    await one.record_failure()
    await two.record_failure()  # the second failure in a row, seen by another process
    with pytest.raises(BreakerOpen):
        await one.acquire(alternatives=False)
    clock.now += 10
    assert (await two.snapshot())["breaker"] == "half-open"
    assert await one.acquire(alternatives=False) == keys[0]  # the probe
    with pytest.raises(BreakerOpen) as wait:
        await two.acquire(alternatives=False)  # one probe for all of them
    assert wait.value.retry_after == 1
    raw = await link.client.get(link.key("health", "p"))
    assert raw is not None and b"sk-provider" not in raw  # keys are stored as hashes
    assert 0 < await link.client.pttl(link.key("health", "p")) <= 30_000
    await two.record_answer(keys[0], 200, None)  # the probe's answer, wherever it lands
    assert await link.client.exists([link.key("health", "p")]) == 0  # closed: nothing kept
    assert await one.acquire(alternatives=False) == keys[0]


async def test_a_unix_socket_url(redis_server: RedisServer) -> None:
    async with open_redis(f"unix://{redis_server.socket}", "t:", lambda: None, bound=BOUND) as link:
        assert await RedisBuckets(link).acquire([Take(f"u{uuid.uuid4().hex}\0rpm", 1, 5)]) == 0


@pytest.mark.parametrize(
    "gone",
    ["redis://127.0.0.1:1/0", "redis+sentinel://127.0.0.1:1/main", "redis+cluster://127.0.0.1:1"],
)
async def test_a_server_that_is_gone_is_one_bounded_counted_failure(
    caplog: pytest.LogCaptureFixture, gone: str
) -> None:
    """Also a Sentinel or Cluster that is gone: the gateway still opens and serves locally."""
    errors: list[None] = []
    async with open_redis(gone, "t:", lambda: errors.append(None), bound=0.05) as link:
        buckets = RedisBuckets(link)
        with caplog.at_level(logging.WARNING, "minillm.shared"), trio.fail_after(1):
            for _ in range(5):  # served by the local bucket; Redis is left alone a while
                assert await buckets.acquire([Take("k\0rpm", 1, 60)]) == 0
    assert len(errors) == 1
    (record,) = caplog.records
    assert record.getMessage().startswith("shared state: Redis failed (")


async def test_a_cluster_that_comes_up_after_the_gateway_is_joined(tmp_path: Path) -> None:
    node = ClusterNode(tmp_path)
    async with open_redis(node.url, "t:", lambda: None, bound=BOUND) as link:
        buckets = RedisBuckets(link)
        both = [Take("k\0rpm", 1, 60), Take("k\0tpm", 0, 1000)]  # one script, two keys
        assert await buckets.acquire(both) == 0  # served by the local buckets
        node.start()
        try:
            key = link.key("rl", "{k}", "rpm").encode()
            with trio.fail_after(5):  # opened again within a second, then Redis is tried again
                while node.command(b"EXISTS " + key) != b":1\r\n":
                    await trio.sleep(0.1)
                    await buckets.acquire(both)
        finally:
            node.stop()
