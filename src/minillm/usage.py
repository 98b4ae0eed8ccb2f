"""Usage records: one row per finished request, written to SQLite off the request path.

Requests hand a :class:`UsageRecord` to :meth:`UsageWriter.submit`, which
never blocks: it puts the record in a bounded channel, or drops and counts it
when the channel is full.  One writer task takes records in batches and
commits each batch in a worker thread (WAL mode, so readers such as
``minillm usage`` never block it).  :meth:`UsageWriter.aclose` flushes what is
left on graceful shutdown.  Several gateway processes may share one file.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import orjson
import trio

__all__ = ["GroupBy", "UsageRecord", "UsageWriter", "connect", "summarize"]

log = logging.getLogger("minillm.usage")

CHANNEL_SIZE = 10_000
FLUSH_INTERVAL = 0.5  # seconds a record may wait to be batched with others
GroupBy = Literal["key", "model", "provider"]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One finished request (column order of the ``requests`` table)."""

    ts: float  # unix seconds at the start of the request
    request_id: str
    key: str | None
    client_format: str
    endpoint: str
    provider: str | None
    model_asked: str | None
    model_served: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    status: int
    latency_ms: float
    ttfb_ms: float | None
    cost: float | None


_TYPES = {"ts": "REAL NOT NULL", "status": "INTEGER NOT NULL", "latency_ms": "REAL NOT NULL"}
_COLUMNS = [f.name for f in fields(UsageRecord)]
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS requests ("
    + ", ".join(f"{c} {_TYPES.get(c, '')}".strip() for c in _COLUMNS)
    + ");\nCREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);"
)
_INSERT = (
    f"INSERT INTO requests ({', '.join(_COLUMNS)}) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_COLUMNS)))
    + " FROM json_each(?)"
)


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating) the usage database in WAL mode."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, timeout=10.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


class UsageWriter:
    """The bounded channel and the one writer task that drains it."""

    def __init__(
        self,
        path: str | Path,
        *,
        capacity: int = CHANNEL_SIZE,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.dropped = 0
        self.written = 0
        self._on_drop = on_drop
        self._send, self._recv = trio.open_memory_channel[UsageRecord](capacity)
        self._db: sqlite3.Connection | None = None
        self._batch: list[UsageRecord] = []
        self._done = trio.Event()
        self._running = False

    def submit(self, record: UsageRecord) -> None:
        """Queue ``record``; never blocks, never raises (a full queue drops it)."""
        try:
            self._send.send_nowait(record)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.dropped += 1
            if self._on_drop is not None:
                self._on_drop()

    async def open(self) -> None:
        self._db = await trio.to_thread.run_sync(connect, self.path)

    async def run(self) -> None:
        """The writer task: commit batches until the channel is closed."""
        self._running = True
        try:
            async for record in self._recv:
                self._batch.append(record)
                # Let records gather instead of waking up for each one: a few large
                # transactions cost far less than one per request (a task switch, a
                # thread hop and a WAL append each).
                await trio.sleep(FLUSH_INTERVAL)
                while True:
                    try:
                        self._batch.append(self._recv.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                with trio.CancelScope(shield=True):
                    await self._commit()
        finally:
            self._done.set()

    async def aclose(self) -> None:
        """Stop accepting, flush every queued record, close the database."""
        self._send.close()
        with trio.CancelScope(shield=True):
            if self._running:
                with trio.move_on_after(10):
                    await self._done.wait()
            while True:  # the writer may have been cancelled: drain here
                try:
                    self._batch.append(self._recv.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            await self._commit()
            if self._db is not None:
                await trio.to_thread.run_sync(self._db.close)
                self._db = None

    async def _commit(self) -> None:
        batch, self._batch = self._batch, []
        if not batch or self._db is None:
            return
        try:
            await trio.to_thread.run_sync(_write, self._db, batch)
            self.written += len(batch)
        except sqlite3.Error as exc:
            self.dropped += len(batch)
            log.error("usage: could not write %d records to %s: %s", len(batch), self.path, exc)


def _write(db: sqlite3.Connection, batch: Sequence[UsageRecord]) -> None:
    # One statement over a JSON array: SQLite inserts the whole batch while this
    # thread has released the GIL, instead of taking it back for every row.
    rows = orjson.dumps([[getattr(r, name) for name in _COLUMNS] for r in batch])
    with db:
        db.execute(_INSERT, (rows,))


# -- the report ---------------------------------------------------------------------------

_GROUP_SQL = {
    "key": "COALESCE(key, '-')",
    "model": "COALESCE(model_served, model_asked, '-')",
    "provider": "COALESCE(provider, '-')",
}


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(
    db: sqlite3.Connection, *, since: float, by: GroupBy, now: float | None = None
) -> list[dict[str, object]]:
    """Rows ``{group, requests, errors, input_tokens, output_tokens, cost, p50_ms, p95_ms}``.

    ``since`` is in seconds before ``now``; ``cost`` is ``None`` when no row
    of the group was priced.  Sorted by requests, most first.
    """
    cutoff = (time.time() if now is None else now) - since
    query = (
        f"SELECT {_GROUP_SQL[by]}, status, input_tokens, output_tokens, cost, latency_ms"
        " FROM requests WHERE ts >= ?"
    )
    groups: dict[str, list[tuple[int, int | None, int | None, float | None, float]]] = {}
    for group, *rest in db.execute(query, (cutoff,)):
        groups.setdefault(group, []).append(tuple(rest))
    return sorted((_row(g, rows) for g, rows in groups.items()), key=_order)


def _order(row: dict[str, object]) -> tuple[int, str]:
    return (-int(str(row["requests"])), str(row["group"]))


def _row(
    group: str, rows: Iterable[tuple[int, int | None, int | None, float | None, float]]
) -> dict[str, object]:
    rows = list(rows)
    costs = [r[3] for r in rows if r[3] is not None]
    latencies = sorted(r[4] for r in rows)
    p50, p95 = _percentile(latencies, 0.5), _percentile(latencies, 0.95)
    return {
        "group": group,
        "requests": len(rows),
        "errors": sum(1 for r in rows if not 200 <= r[0] < 400),
        "input_tokens": sum(r[1] or 0 for r in rows),
        "output_tokens": sum(r[2] or 0 for r in rows),
        "cost": round(sum(costs), 6) if costs else None,
        "p50_ms": None if p50 is None else round(p50, 1),
        "p95_ms": None if p95 is None else round(p95, 1),
    }
