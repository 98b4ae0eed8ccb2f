"""Records: what a finished request leaves behind -- metrics, its usage row, its price and the
charge of its tokens against its key.

One :class:`Records` per app, built in ``create_app`` and started when serving
starts (the usage writer runs in the app's nursery).  It takes plain
:class:`~minillm.server.request.RequestRecord` values from the middleware; with
usage off and no gateway keys the per-request work is a few metric updates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from minillm.core.config import Config
from minillm.core.dialects import dialect_of, endpoint_of
from minillm.core.tokens import Tokens
from minillm.runtime.usage import UsageRecord, UsageWriter
from minillm.runtime.usage_db import UsageStoreError
from minillm.server.admission import Admission
from minillm.server.metrics import Metrics
from minillm.server.request import RequestRecord

__all__ = ["Records"]

log = logging.getLogger("minillm.server")


class Records:
    """Metrics registry, usage writer and prices of one app."""

    def __init__(self, config: Config, admission: Admission) -> None:
        self.metrics = Metrics()
        self.admission = admission
        self.prices: Mapping[str, tuple[float, float]] = config.prices
        self.usage: UsageWriter | None = None
        self._usage_path = config.usage_db

    async def start(self, nursery: trio.Nursery) -> None:
        """Open the usage database and start its writer in ``nursery``."""
        if self._usage_path is None:
            return
        writer = UsageWriter(self._usage_path, on_drop=self.metrics.usage_dropped.inc)
        try:
            store = await writer.open()
        except UsageStoreError as exc:  # a bad path must not stop serving
            log.error("usage: cannot open %s; usage is not recorded", exc)
            return
        nursery.start_soon(writer.run)
        self.usage = writer
        log.info("usage: recording to %s", store.where)

    async def aclose(self) -> None:
        """Flush the usage records still queued (graceful shutdown)."""
        if self.usage is not None:
            await self.usage.aclose()

    async def record(self, rec: RequestRecord) -> None:
        """Metrics, usage row and token charge of a finished API request."""
        tokens = rec.tokens
        endpoint = endpoint_of(rec.path) or "other"
        m = self.metrics
        # a request that reached a target and failed counts under the model it asked for
        asked = rec.served.model if rec.served.target != "-" else ""
        provider, model = rec.served.provider or "", m.model_label(rec.served.model_served or asked)
        status = rec.status or 499  # cancelled before any response: client went away
        m.child(m.requests, endpoint, provider, model, str(status)).inc()
        m.child(m.duration, endpoint, provider).observe(rec.elapsed)
        if rec.ttfb is not None:
            m.child(m.ttfb, endpoint, provider).observe(rec.ttfb)
        if tokens.input:
            m.child(m.tokens, provider, model, "input").inc(tokens.input)
        if tokens.output:
            m.child(m.tokens, provider, model, "output").inc(tokens.output)
        if rec.served.rejection is not None:
            m.child(m.rejections, rec.served.rejection).inc()
        cost = self._cost(rec, tokens)
        if self.usage is not None:
            self.usage.submit(_usage_row(rec, endpoint, status, cost))
        spent = (tokens.input or 0) + (tokens.output or 0)
        if rec.served.key is not None and (spent or cost):
            await self.admission.charge(rec.served.key, spent, cost)

    def _cost(self, rec: RequestRecord, tokens: Tokens) -> float | None:
        """USD from ``[prices]`` (of the model served, else the one asked for)."""
        asked = rec.served.model if rec.served.model != "-" else None
        price = self.prices.get(rec.served.model_served or "") or self.prices.get(asked or "")
        if price is None or (tokens.input is None and tokens.output is None):
            return None
        return ((tokens.input or 0) * price[0] + (tokens.output or 0) * price[1]) / 1e6


def _usage_row(rec: RequestRecord, endpoint: str, status: int, cost: float | None) -> UsageRecord:
    tokens = rec.tokens
    return UsageRecord(
        ts=rec.wall,
        request_id=rec.request_id,
        key=rec.served.key.name if rec.served.key is not None else None,
        client_format=dialect_of(rec.path).name,
        endpoint=endpoint,
        provider=rec.served.provider,
        model_asked=rec.served.model if rec.served.model != "-" else None,
        model_served=rec.served.model_served,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
        status=status,
        latency_ms=rec.elapsed * 1000,
        ttfb_ms=None if rec.ttfb is None else rec.ttfb * 1000,
        cost=cost,
    )
