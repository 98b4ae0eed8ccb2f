"""Admission: who may call (authenticate), which models (authorize), how often and how much
(rate limits and budgets), and the charge once the tokens are known.

One :class:`Admission` per app.  With no gateway keys configured it does nothing:
:attr:`Admission.enabled` is false and no hook is installed.
"""

from __future__ import annotations

import logging

import trio
from werkzeug.datastructures import Headers

from minillm.core.auth import Authenticator, GatewayKey, is_loopback, presented_key
from minillm.core.budget import Budgets
from minillm.core.config import Config
from minillm.core.errors import Forbidden
from minillm.core.ratelimit import RateLimiter
from minillm.runtime.shared import SharedStores

__all__ = ["Admission"]

log = logging.getLogger("minillm.server")

_LOCAL_PATHS = frozenset({"/metrics", "/health/providers"})  # open on loopback only


class Admission:
    """Authenticator, rate limiter and budgets of one app."""

    def __init__(self, config: Config, limiter: RateLimiter | None = None) -> None:
        keys = config.auth_keys
        self.auth = Authenticator(keys) if keys else None
        needs_limits = any(k.rpm or k.tpm for k in keys)
        self.limiter = (limiter or RateLimiter()) if needs_limits else None
        self.budgets = Budgets() if any(k.budget_usd for k in keys) else None
        if self.budgets is not None and not config.prices:
            log.warning("budgets: no [models.<name>] prices are configured, so nothing is spent")

    @property
    def enabled(self) -> bool:
        return self.auth is not None

    def share(self, shared: SharedStores | None) -> None:
        """Count limits and budgets in ``shared`` (Redis) if given."""
        if shared is not None and self.limiter is not None:
            self.limiter.store = shared.buckets()
        if shared is not None and self.budgets is not None:
            self.budgets.store = shared.spend()

    def authenticate(self, path: str, headers: Headers, remote: str | None) -> GatewayKey | None:
        """The caller's key (401 without a valid one); ``None`` for the open paths."""
        assert self.auth is not None
        if path == "/health" or (path in _LOCAL_PATHS and is_loopback(remote)):
            return None
        return self.auth.authenticate(
            presented_key(headers.get("authorization"), headers.get("x-api-key"))
        )

    async def limit(self, key: GatewayKey) -> None:
        """429 when ``key`` is over its budget or its rate limit."""
        if self.budgets is not None:  # first: it takes nothing
            await self.budgets.admit(key)
        if self.limiter is not None:
            await self.limiter.admit(key)

    async def check_model(self, key: GatewayKey | None, model: object) -> None:
        """403 when ``key`` may not use ``model``; the refused request gives back the
        ``rpm`` unit it took on the way in."""
        if key is not None and key.models and not key.allows(str(model)):
            log.info("key %s may not use model %r", key.name, str(model)[:100])
            if self.limiter is not None:
                await self.limiter.refund(key)
            raise Forbidden(f"This key may not use model '{str(model)[:100]}'")

    async def charge(self, key: GatewayKey, spent: int, cost: float | None) -> None:
        """Take ``spent`` tokens and ``cost`` USD from ``key``'s limits (bounded to 1 s)."""
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            if self.limiter is not None and key.tpm and spent:
                await self.limiter.charge(key, spent)
            if self.budgets is not None and cost:
                await self.budgets.charge(key, cost)
