"""Per-app accounting: gateway keys and limits on the way in; metrics and usage on the way out.

One :class:`Accounting` per app, built in ``create_app`` and started when
serving starts (the usage writer runs in the app's nursery).  With no gateway
keys configured and usage off, the per-request work is a few metric updates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers

from minillm.core.auth import Authenticator, is_loopback, presented_key
from minillm.core.budget import Budgets
from minillm.core.config import Config
from minillm.core.dialects import dialect_of
from minillm.core.errors import Forbidden, GatewayError
from minillm.core.ratelimit import RateLimiter
from minillm.core.tokens import Tokens, tokens_from_usage, usage_in_json
from minillm.runtime.shared import SharedStores
from minillm.runtime.usage import UsageRecord, UsageWriter
from minillm.runtime.usage_db import UsageStoreError
from minillm.server.metrics import CONTENT_TYPE, Metrics, rejection_reason
from minillm.server.scope import RequestState, current_request

__all__ = ["Accounting", "install_accounting"]

log = logging.getLogger("minillm.server")

_LOCAL_PATHS = frozenset({"/metrics", "/health/providers"})  # open on loopback only


class Accounting:
    """Metrics registry, usage writer, authenticator, rate limiter and budgets of one app."""

    def __init__(self, config: Config, limiter: RateLimiter | None = None) -> None:
        keys = config.auth_keys
        self.metrics = Metrics()
        self.auth = Authenticator(keys) if keys else None
        needs_limits = any(k.rpm or k.tpm for k in keys)
        self.limiter = (limiter or RateLimiter()) if needs_limits else None
        self.budgets = Budgets() if any(k.budget_usd for k in keys) else None
        if self.budgets is not None and not config.prices:
            log.warning("budgets: no [models.<name>] prices are configured, so nothing is spent")
        self.prices: Mapping[str, tuple[float, float]] = config.prices
        self.usage: UsageWriter | None = None
        self._usage_path = config.usage_db

    async def start(self, nursery: trio.Nursery, shared: SharedStores | None = None) -> None:
        """Count limits and budgets in ``shared`` (Redis) if given; open the usage
        database and start its writer in ``nursery``."""
        if shared is not None and self.limiter is not None:
            self.limiter.store = shared.buckets()
        if shared is not None and self.budgets is not None:
            self.budgets.store = shared.spend()
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

    # -- on the way in ---------------------------------------------------------------------

    async def admit(
        self, state: RequestState, path: str, headers: Headers, remote: str | None
    ) -> None:
        """Authenticate (401), check the budget and rate-limit (429) a request; only
        with keys configured."""
        assert self.auth is not None
        if path == "/health" or (path in _LOCAL_PATHS and is_loopback(remote)):
            return
        try:
            state.key = key = self.auth.authenticate(
                presented_key(headers.get("authorization"), headers.get("x-api-key"))
            )
            if self.budgets is not None:  # first: it takes nothing
                await self.budgets.admit(key)
            if self.limiter is not None:
                await self.limiter.admit(key)
        except GatewayError as exc:
            state.rejection = "auth" if state.key is None else rejection_reason(exc)
            raise

    async def check_model(self, state: RequestState, model: object) -> None:
        """403 when the request's key may not use ``model``; the refused request
        gives back the ``rpm`` unit it took on the way in."""
        key = state.key
        if key is not None and key.models and not key.allows(str(model)):
            state.rejection = "auth"
            log.info("key %s may not use model %r", key.name, str(model)[:100])
            if self.limiter is not None:
                await self.limiter.refund(key)
            raise Forbidden(f"This key may not use model '{str(model)[:100]}'")

    # -- on the way out --------------------------------------------------------------------

    async def finish(
        self, state: RequestState, endpoint: str, path: str, wall: float, elapsed: float
    ) -> None:
        """Metrics, usage record and token charge of a finished API request."""
        tokens = _tokens(state)
        m = self.metrics
        # a request that reached a target and failed counts under the model it asked for
        asked = state.model if state.target != "-" else ""
        provider, model = state.provider or "", m.model_label(state.model_served or asked)
        status = state.status or 499  # cancelled before any response: client went away
        m.requests.labels(endpoint, provider, model, str(status)).inc()
        m.duration.labels(endpoint, provider).observe(elapsed)
        ttfb = None if state.first_byte is None else state.first_byte - state.started
        if ttfb is not None:
            m.ttfb.labels(endpoint, provider).observe(ttfb)
        if tokens.input:
            m.tokens.labels(provider, model, "input").inc(tokens.input)
        if tokens.output:
            m.tokens.labels(provider, model, "output").inc(tokens.output)
        if state.rejection is not None:
            m.rejections.labels(state.rejection).inc()
        cost = self._cost(state, tokens)
        if self.usage is not None:
            record = self._record(
                state,
                endpoint,
                path,
                wall=wall,
                elapsed=elapsed,
                ttfb=ttfb,
                tokens=tokens,
                status=status,
                cost=cost,
            )
            self.usage.submit(record)
        key = state.key
        spent = (tokens.input or 0) + (tokens.output or 0)
        if key is None or not (spent or cost):
            return
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            if self.limiter is not None and key.tpm and spent:
                await self.limiter.charge(key, spent)
            if self.budgets is not None and cost:
                await self.budgets.charge(key, cost)

    def _cost(self, state: RequestState, tokens: Tokens) -> float | None:
        """USD from ``[prices]`` (of the model served, else the one asked for)."""
        asked = state.model if state.model != "-" else None
        price = self.prices.get(state.model_served or "") or self.prices.get(asked or "")
        if price is None or (tokens.input is None and tokens.output is None):
            return None
        return ((tokens.input or 0) * price[0] + (tokens.output or 0) * price[1]) / 1e6

    def _record(
        self,
        state: RequestState,
        endpoint: str,
        path: str,
        *,
        wall: float,
        elapsed: float,
        ttfb: float | None,
        tokens: Tokens,
        status: int,
        cost: float | None,
    ) -> UsageRecord:
        asked = state.model if state.model != "-" else None
        return UsageRecord(
            ts=wall,
            request_id=state.request_id,
            key=state.key.name if state.key is not None else None,
            client_format=dialect_of(path).name,
            endpoint=endpoint,
            provider=state.provider,
            model_asked=asked,
            model_served=state.model_served,
            input_tokens=tokens.input,
            output_tokens=tokens.output,
            cache_read_tokens=tokens.cache_read,
            cache_write_tokens=tokens.cache_write,
            status=status,
            latency_ms=elapsed * 1000,
            ttfb_ms=None if ttfb is None else ttfb * 1000,
            cost=cost,
        )


def install_accounting(app: QuartTrio, accounting: Accounting) -> None:
    """``GET /metrics`` and, when gateway keys are configured, the key check."""

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(accounting.metrics.render(), content_type=CONTENT_TYPE)

    if accounting.auth is not None:

        @app.before_request
        async def check_key() -> None:
            await accounting.admit(
                current_request(), request.path, request.headers, request.remote_addr
            )


def _tokens(state: RequestState) -> Tokens:
    if state.stream is not None:
        counted: Tokens | None = getattr(state.stream, "tokens", None)
        if counted is not None:
            return counted
        return Tokens(state.stream.input_tokens, state.stream.output_tokens)
    if state.reply_body is not None and state.status == 200:
        return tokens_from_usage(usage_in_json(state.reply_body))
    return Tokens()
