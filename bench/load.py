"""A fast Python load generator: asyncio protocols, pre-encoded requests, keep-alive.

Closed loop: ``concurrency`` connections, each sends its next request as soon as the
previous answer is complete. Connections are opened before the clock starts (with a
ramp: each when its turn comes). Every
answer is checked (status 2xx and a marker of a complete body); latency is measured
to the last byte and, for streams, to the first body byte (TTFB).

With a ramp, the connections send their first request spread evenly over ``ramp_s``
and the measured window starts after it: throughput counts the answers completed
inside the window, latency the requests sent inside it.  Without one, all send at
once and keep in step when their answers take the same time (long streams): a wave
of simultaneous requests every stream, which measures bursts rather than a steady load.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

_GRACE_S = 30.0  # how long in-flight requests may take after the measured window


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    elapsed_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    ttfb_p50_ms: float | None
    ttfb_p99_ms: float | None
    non2xx: int
    errors: int
    invalid: int
    first_error: str = ""
    tool: str = "python"

    @property
    def ok(self) -> bool:
        return self.requests > 0 and not (self.non2xx or self.errors or self.invalid)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


@dataclass(slots=True)
class _Stats:
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    invalid: int = 0
    first_error: str = ""
    in_window: int = 0  # answers completed inside the measured window

    def fail(self, what: str) -> None:
        self.first_error = self.first_error or what[:300]


class _Client(asyncio.Protocol):
    """One keep-alive connection; ``send()`` returns when the whole answer is in."""

    def __init__(self, request: bytes) -> None:
        self._request = request
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.buf = bytearray()
        self.status = 0
        self.must_close = False
        self.t0 = self.ttfb = self.end = 0.0
        self._body_at = -1
        self._length = -1  # -1: chunked; -2: until close
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.lost.done():
            self.lost.set_result(None)
        if self._waiter is not None and not self._waiter.done():
            if self._length == -2 and self._body_at >= 0:
                self._complete()
            else:
                self._waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def send(self) -> asyncio.Future[None]:
        if self._transport is None:
            raise ConnectionError("not connected")
        self.buf.clear()
        self._body_at, self.ttfb = -1, 0.0
        self._waiter = asyncio.get_running_loop().create_future()
        self.t0 = time.perf_counter()
        self._transport.write(self._request)
        return self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self._body_at < 0 and not self._parse_head():
            return
        if not self.ttfb and len(buf) > self._body_at:
            self.ttfb = time.perf_counter()
        if self._length >= 0:
            done = len(buf) - self._body_at >= self._length
        elif self._length == -1:
            done = buf.endswith(b"0\r\n\r\n") and (
                len(buf) - self._body_at == 5 or buf.endswith(b"\r\n0\r\n\r\n")
            )
        else:
            done = False
        if done:
            self._complete()

    def _parse_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).lower()
        self.status = int(head[9:12])
        self._body_at = end + 4
        if (i := head.find(b"\ncontent-length:")) >= 0:
            eol = head.find(b"\r", i + 1)
            self._length = int(head[i + 16 : eol if eol > 0 else len(head)])
        elif b"chunked" in head:
            self._length = -1
        else:
            self._length = -2
        self.must_close = b"\nconnection: close" in head or self._length == -2
        return True

    def _complete(self) -> None:
        self.end = time.perf_counter()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def _connect(host: str, port: int, request: bytes) -> _Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: _Client(request), host, port)
    return client


async def _slot(
    client: _Client | None,
    *,
    host: str,
    port: int,
    request: bytes,
    marker: bytes,
    first_at: float,
    window: tuple[float, float],
    stats: _Stats,
) -> None:
    if client is None:  # a ramp: connect when its turn comes
        await asyncio.sleep(max(0.0, first_at - time.perf_counter()))
        client = await _connect(host, port, request)
    start, stop_at = window
    while time.perf_counter() < stop_at:
        try:
            await client.send()
        except (ConnectionError, OSError) as exc:
            stats.errors += 1
            stats.fail(f"{type(exc).__name__}: {exc}")
            client.close()
            await asyncio.sleep(0.01)
            client = await _connect(host, port, request)
            continue
        stats.statuses[client.status] += 1
        measured = client.t0 >= start
        if not 200 <= client.status < 300:
            stats.fail(f"HTTP {client.status}: {bytes(client.buf[:300])!r}")
        elif marker not in client.buf:
            stats.invalid += 1
            stats.fail(f"incomplete answer: {bytes(client.buf[-200:])!r}")
        else:
            stats.in_window += start <= client.end <= stop_at
            if measured:
                stats.latencies.append(client.end - client.t0)
                if client.ttfb:
                    stats.ttfbs.append(client.ttfb - client.t0)
        if client.must_close:
            client.close()
            client = await _connect(host, port, request)
    client.close()


async def run_load(
    host: str,
    port: int,
    request: bytes,
    *,
    marker: bytes,
    concurrency: int,
    duration_s: float,
    ramp_s: float = 0.0,
) -> LoadResult:
    """Closed-loop load for ``duration_s`` with ``concurrency`` keep-alive connections,
    after a ramp of ``ramp_s`` (see the module docstring)."""
    stats = _Stats()
    clients: list[_Client | None] = [None] * concurrency  # with a ramp: connected in turn
    try:
        if not ramp_s:
            clients[:] = await asyncio.gather(
                *(_connect(host, port, request) for _ in range(concurrency))
            )
    except OSError as exc:
        stats.errors += 1
        stats.fail(f"connect failed: {exc}")
        now = time.perf_counter()
        return _result(stats, (now, now))
    begin = time.perf_counter()
    window = (begin + ramp_s, begin + ramp_s + duration_s)
    tasks = [
        asyncio.create_task(
            _slot(
                c,
                host=host,
                port=port,
                request=request,
                marker=marker,
                first_at=begin + ramp_s * i / concurrency,
                window=window,
                stats=stats,
            )
        )
        for i, c in enumerate(clients)
    ]
    done, pending = await asyncio.wait(tasks, timeout=ramp_s + duration_s + _GRACE_S)
    for task in pending:
        task.cancel()
        stats.errors += 1
        stats.fail("request still pending after the grace period")
    for task in done:
        if (exc := task.exception()) is not None:
            stats.errors += 1
            stats.fail(f"{type(exc).__name__}: {exc}")
    return _result(stats, window)


async def long_streams(
    host: str,
    port: int,
    request: bytes,
    *,
    marker: bytes,
    clients: int,
    duration_s: float,
    ramp_s: float,
    rss_mb: Callable[[], float],
) -> tuple[LoadResult, float]:
    """``clients`` closed-loop clients on long streams, started over ``ramp_s``;
    the result and the RSS halfway through the window."""

    async def halfway() -> float:
        await asyncio.sleep(ramp_s + duration_s / 2)
        return rss_mb()

    sample = asyncio.create_task(halfway())
    result = await run_load(
        host,
        port,
        request,
        marker=marker,
        concurrency=clients,
        duration_s=duration_s,
        ramp_s=ramp_s,
    )
    return result, await sample


def _result(stats: _Stats, window: tuple[float, float]) -> LoadResult:
    lat = sorted(stats.latencies)
    ttfb = sorted(stats.ttfbs)
    total = sum(stats.statuses.values())
    elapsed = max(window[1] - window[0], 1e-9)
    non2xx = sum(n for s, n in stats.statuses.items() if not 200 <= s < 300)
    return LoadResult(
        requests=total,
        elapsed_s=elapsed,
        rps=stats.in_window / elapsed,
        p50_ms=percentile(lat, 0.5) * 1e3,
        p90_ms=percentile(lat, 0.9) * 1e3,
        p99_ms=percentile(lat, 0.99) * 1e3,
        ttfb_p50_ms=percentile(ttfb, 0.5) * 1e3 if ttfb else None,
        ttfb_p99_ms=percentile(ttfb, 0.99) * 1e3 if ttfb else None,
        non2xx=non2xx,
        errors=stats.errors,
        invalid=stats.invalid,
        first_error=stats.first_error,
    )


@dataclass(frozen=True, slots=True)
class SlowReadResult:
    clients: int
    answered: int  # clients whose answer started with a 2xx status line
    peak_rss_mb: float


async def _slow_reader(
    host: str, port: int, request: bytes, *, stop_at: float, read_bytes: int, interval_s: float
) -> bool:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, port))
        await loop.sock_sendall(sock, request)
        first = await asyncio.wait_for(loop.sock_recv(sock, read_bytes), _GRACE_S)
        while time.perf_counter() < stop_at:
            await asyncio.sleep(interval_s)
            if not await asyncio.wait_for(loop.sock_recv(sock, read_bytes), _GRACE_S):
                break
        return first.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2"))
    finally:
        sock.close()


async def slow_readers(
    host: str,
    port: int,
    request: bytes,
    *,
    n: int,
    hold_s: float,
    rss_mb: Callable[[], float],
    read_bytes: int = 1024,
    interval_s: float = 0.1,
) -> SlowReadResult:
    """``n`` streaming clients that read ``read_bytes`` every ``interval_s``; peak RSS."""
    stop_at = time.perf_counter() + hold_s
    tasks = [
        asyncio.create_task(
            _slow_reader(
                host, port, request, stop_at=stop_at, read_bytes=read_bytes, interval_s=interval_s
            )
        )
        for _ in range(n)
    ]
    peak = rss_mb()
    while time.perf_counter() < stop_at:
        await asyncio.sleep(0.2)
        peak = max(peak, rss_mb())
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return SlowReadResult(clients=n, answered=sum(r is True for r in results), peak_rss_mb=peak)


async def probe(host: str, port: int, request: bytes, marker: bytes) -> str | None:
    """One request; ``None`` when it answered 2xx with a complete body, else why not."""
    try:
        client = await _connect(host, port, request)
    except OSError as exc:
        return f"connect failed: {exc}"
    try:
        await asyncio.wait_for(client.send(), _GRACE_S)
    except (ConnectionError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    if not 200 <= client.status < 300:
        return f"HTTP {client.status}: {bytes(client.buf[:400])!r}"
    if marker not in client.buf:
        return f"incomplete answer: {bytes(client.buf[:400])!r}"
    return None
