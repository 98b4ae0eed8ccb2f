"""Spend budgets per gateway key: ``budget_usd`` per ``budget_period``.

A period is a fixed window in UTC: ``1d`` a day, ``7d`` a week from Monday,
``30d`` thirty days (counted from Monday 1970-01-05), ``month`` a calendar
month.  Spend is the cost of the key's requests from ``[prices]``, added when
each request ends; a key whose spend in the current window has reached its
budget is refused (:class:`~minillm.core.errors.BudgetExceeded`) until the window
ends.  A request admitted just under the budget may end over it.

:class:`SpendStore` keeps the sums: :class:`MemorySpend` in this process, or
a shared store (:mod:`minillm.runtime.redis_state`) for several processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from minillm.core.auth import GatewayKey
from minillm.core.errors import BudgetExceeded

__all__ = ["Budgets", "MemorySpend", "SpendStore", "Window", "window"]

_DAY = 86400.0
_MONDAY = 4 * _DAY  # 1970-01-05, the first Monday of the epoch


@dataclass(frozen=True, slots=True)
class Window:
    """One budget period: ``[start, end)`` in Unix seconds, and a name unique per key."""

    id: str
    start: float
    end: float


def window(period: str, now: float) -> Window:
    """The window of ``period`` that contains ``now`` (Unix seconds)."""
    if period == "month":
        at = datetime.fromtimestamp(now, UTC)
        first = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        after = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        start, end = first.timestamp(), after.timestamp()
    else:
        length = int(period.removesuffix("d")) * _DAY
        start = _MONDAY + math.floor((now - _MONDAY) / length) * length
        end = start + length
    return Window(f"{period}:{int(start)}", start, end)


class SpendStore(Protocol):
    """Sums of spend per key and window."""

    async def spent(self, key: str, window: Window) -> float: ...

    async def add(self, key: str, window: Window, usd: float) -> None: ...


class MemorySpend:
    """In-process sums: the current window of each key only."""

    def __init__(self) -> None:
        self._sums: dict[str, tuple[str, float]] = {}

    async def spent(self, key: str, window: Window) -> float:
        current, usd = self._sums.get(key, (window.id, 0.0))
        return usd if current == window.id else 0.0

    async def add(self, key: str, window: Window, usd: float) -> None:
        self._sums[key] = (window.id, await self.spent(key, window) + usd)


class Budgets:
    """Applies the keys' budgets using a :class:`SpendStore`."""

    def __init__(self, store: SpendStore | None = None, clock: Callable[[], float] = time.time):
        self.store: SpendStore = store or MemorySpend()
        self._clock = clock

    async def admit(self, key: GatewayKey) -> None:
        """Raise :class:`BudgetExceeded` (``Retry-After``: the window's end) when spent."""
        if key.budget_usd is None:
            return
        now = self._clock()
        current = window(key.budget_period, now)
        if await self.store.spent(key.name, current) >= key.budget_usd:
            raise BudgetExceeded(key.budget_usd, key.budget_period, current.end - now)

    async def charge(self, key: GatewayKey, usd: float) -> None:
        if key.budget_usd is not None and usd > 0:
            await self.store.add(key.name, window(key.budget_period, self._clock()), usd)
