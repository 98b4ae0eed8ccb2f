"""Usage records: one row per finished request, written off the request path.

Requests hand a :class:`UsageRecord` to :meth:`UsageWriter.submit`, which
never blocks: it puts the record in a bounded channel, or drops and counts it
when the channel is full.  One writer task takes records in batches and
commits each batch in a worker thread, to SQLite or PostgreSQL (see
:mod:`minillm.runtime.usage_db`).  :meth:`UsageWriter.aclose` flushes what is left on
graceful shutdown.  Several gateway processes may share one database.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

import trio

from minillm.core.auth import GatewayKey
from minillm.core.budget import window
from minillm.runtime.usage_db import (
    SummaryRow,
    UsageRecord,
    UsageStore,
    UsageStoreError,
    open_store,
)

__all__ = ["GroupBy", "UsageRecord", "UsageWriter", "budget_spend", "summarize"]

log = logging.getLogger("minillm.usage")

CHANNEL_SIZE = 10_000
FLUSH_INTERVAL = 0.5  # seconds a record may wait to be batched with others
GroupBy = Literal["key", "model", "provider"]


class UsageWriter:
    """The bounded channel and the one writer task that drains it."""

    def __init__(
        self,
        target: str | Path,
        *,
        capacity: int = CHANNEL_SIZE,
        on_drop: Callable[[int], object] | None = None,
    ) -> None:
        self.target = target  # a SQLite path or a postgresql:// URL
        self.dropped = 0
        self.written = 0
        self._on_drop = on_drop
        self._send, self._recv = trio.open_memory_channel[UsageRecord](capacity)
        self._store: UsageStore | None = None
        self._batch: list[UsageRecord] = []
        self._done = trio.Event()
        self._running = False

    def submit(self, record: UsageRecord) -> None:
        """Queue ``record``; never blocks, never raises (a full queue drops it)."""
        try:
            self._send.send_nowait(record)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self._dropped(1)

    def _dropped(self, n: int) -> None:
        self.dropped += n
        if self._on_drop is not None:
            self._on_drop(n)

    async def open(self) -> UsageStore:
        """Open the database (raises :class:`UsageStoreError`); the store is returned."""
        self._store = await trio.to_thread.run_sync(open_store, self.target)
        return self._store

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
            if self._store is not None:
                store, self._store = self._store, None
                try:
                    await trio.to_thread.run_sync(store.close)
                except UsageStoreError as exc:
                    log.warning("usage: %s", exc)

    async def _commit(self) -> None:
        batch, self._batch = self._batch, []
        if not batch or self._store is None:
            return
        try:
            await trio.to_thread.run_sync(self._store.write, batch)
            self.written += len(batch)
        except UsageStoreError as exc:
            self._dropped(len(batch))
            log.error("usage: could not write %d records: %s", len(batch), exc)


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
    store: UsageStore, *, since: float, by: GroupBy, now: float | None = None
) -> list[dict[str, object]]:
    """Rows ``{group, requests, errors, input_tokens, output_tokens, cost, p50_ms, p95_ms}``.

    ``since`` is in seconds before ``now``; ``cost`` is ``None`` when no row
    of the group was priced.  Sorted by requests, most first.
    """
    cutoff = (time.time() if now is None else now) - since
    groups: dict[str, list[SummaryRow]] = {}
    for row in store.select(_GROUP_SQL[by], cutoff):
        groups.setdefault(row[0], []).append(row)
    return sorted((_row(g, rows) for g, rows in groups.items()), key=_order)


def _order(row: dict[str, object]) -> tuple[int, str]:
    return (-int(str(row["requests"])), str(row["group"]))


def _row(group: str, rows: Iterable[SummaryRow]) -> dict[str, object]:
    rows = list(rows)
    costs = [r[4] for r in rows if r[4] is not None]
    latencies = sorted(r[5] for r in rows)
    p50, p95 = _percentile(latencies, 0.5), _percentile(latencies, 0.95)
    return {
        "group": group,
        "requests": len(rows),
        "errors": sum(1 for r in rows if not 200 <= r[1] < 400),
        "input_tokens": sum(r[2] or 0 for r in rows),
        "output_tokens": sum(r[3] or 0 for r in rows),
        "cost": round(sum(costs), 6) if costs else None,
        "p50_ms": None if p50 is None else round(p50, 1),
        "p95_ms": None if p95 is None else round(p95, 1),
    }


def budget_spend(
    store: UsageStore, keys: Sequence[GatewayKey], *, now: float | None = None
) -> dict[str, float]:
    """The recorded spend of each key with a budget, in its current budget window."""
    now = time.time() if now is None else now
    spent: dict[str, float] = {}
    for period in sorted({k.budget_period for k in keys if k.budget_usd is not None}):
        names = {k.name for k in keys if k.budget_usd is not None and k.budget_period == period}
        for row in store.select(_GROUP_SQL["key"], window(period, now).start):
            if row[0] in names:
                spent[row[0]] = spent.get(row[0], 0.0) + (row[4] or 0.0)
    return {name: round(usd, 6) for name, usd in spent.items()}
