"""The gateway core: admission, routing, retries and failover across targets.

Framework-free: the Quart layer (:mod:`minillm.server.app`) parses the HTTP
request into a :class:`Call` and renders the :class:`JSONReply` or
:class:`StreamReply` this returns.  ``Config.request_timeout`` bounds the
whole call, retries and fallbacks included; the decisions themselves are
made by the sans-I/O :class:`~minillm.core.policy.RetryPolicy` and
:class:`~minillm.core.provider_state.ProviderHealth`.

Streams are retried or failed over only before their response starts: once
:meth:`Gateway.handle` has returned a :class:`StreamReply`, a failure ends the
stream with an error event (see :mod:`minillm.server.relay`).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack

import trio

from minillm.core.config import Config, Target
from minillm.core.errors import (
    CircuitOpen,
    GatewayError,
    KeysRateLimited,
    Overloaded,
    ProviderNotConfigured,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from minillm.core.policy import KEY_STATUSES, Action, Failure, RetryPolicy
from minillm.core.provider_state import (
    BreakerOpen,
    BreakerSettings,
    KeysCooling,
    LocalHealth,
    ProviderHealth,
)
from minillm.core.routing import resolve_alias
from minillm.runtime.attempt import Call, JSONReply, StreamReply, attempt
from minillm.runtime.discovery import ModelDiscovery
from minillm.runtime.providers.http import HTTPProvider

__all__ = ["Call", "Gateway", "JSONReply", "StreamReply"]

log = logging.getLogger("minillm.gateway")

TARGET_HEADER = "x-minillm-target"

AttemptObserver = Callable[[str, str], None]
HealthFactory = Callable[[str, tuple[str, ...], BreakerSettings], ProviderHealth]


def _ignore_attempt(provider: str, outcome: str) -> None:
    pass


class Gateway:
    """Routes calls to providers; one instance per running app.

    ``on_attempt(provider, outcome)`` is told of every upstream attempt;
    ``outcome`` is ``ok``, ``unavailable``, ``timeout``, ``http_<status>``,
    ``bad_answer`` (malformed), ``skipped_breaker``, ``skipped_keys`` or
    ``skipped_busy``.  ``health`` makes each provider's :class:`ProviderHealth`
    (in this process by default).
    """

    def __init__(
        self,
        config: Config,
        providers: Mapping[str, HTTPProvider],
        *,
        on_attempt: AttemptObserver = _ignore_attempt,
        rng: random.Random | None = None,
        health: HealthFactory = LocalHealth,
    ) -> None:
        self.config = config
        self.providers = providers
        self.policy = RetryPolicy(retries=config.retries)
        settings = BreakerSettings(
            failures=config.breaker_failures,
            cooldown=config.breaker_cooldown,
            key_cooldown=config.key_cooldown,
            key_disable=config.key_disable,
        )
        self.health: dict[str, ProviderHealth] = {
            name: health(name, p.config.keys, settings) for name, p in providers.items()
        }
        self._admission = trio.CapacityLimiter(config.max_in_flight)
        self._provider_slots = {
            name: trio.CapacityLimiter(p.config.max_in_flight)
            for name, p in providers.items()
            if p.config.max_in_flight
        }
        self._in_flight: Counter[str] = Counter()
        self._on_attempt = on_attempt
        self._rng = rng or random.Random()
        self.discovery = ModelDiscovery(providers)

    def route(self, model: object) -> tuple[Target, ...]:
        """The targets for a client's ``model`` field (raises BadRequest)."""
        return resolve_alias(
            model, self.config.aliases, self.config.providers, offline=self.config.offline
        )

    async def handle(self, call: Call, resources: AsyncExitStack) -> JSONReply | StreamReply:
        """Serve ``call``.

        The admission slot and what the serving attempt holds (its provider's
        slot and in-flight count, the upstream response) are registered on
        ``resources`` and released when the caller closes it, after the stream
        was relayed.  A failed attempt releases its own at once.
        """
        targets = self.route(call.body.get("model"))
        await _hold(self._admission, self.config.queue_timeout, resources)
        with trio.move_on_after(self.config.request_timeout) as deadline:
            return await self._try_targets(call, targets, resources, deadline.deadline)
        log.warning("request deadline of %ss passed", self.config.request_timeout)
        raise UpstreamTimeout()

    async def _try_targets(
        self,
        call: Call,
        targets: tuple[Target, ...],
        resources: AsyncExitStack,
        deadline: float,
    ) -> JSONReply | StreamReply:
        usable = [t for t in targets if self._configured(self.providers[t.provider])]
        if not usable:
            name = targets[-1].provider
            raise ProviderNotConfigured(f"No API key configured for provider '{name}'")
        error: GatewayError = UpstreamUnavailable()
        for i, target in enumerate(usable, 1):
            provider = self.providers[target.provider]
            # This target's slot and in-flight count (and the winning attempt's response:
            # a failed attempt closes its own): released as soon as the gateway moves on,
            # kept until the request ends only by the winner.
            async with AsyncExitStack() as held:
                try:
                    await self._occupy(provider.name, held)
                except Overloaded as busy:
                    self._on_attempt(provider.name, "skipped_busy")
                    error = busy
                    continue
                try:
                    outcome = await self._try_target(
                        call, provider, target, held, deadline, alternatives=i < len(usable)
                    )
                except GatewayError as exc:
                    raise _tagged(exc, target) from None
                if not isinstance(outcome, GatewayError):
                    resources.push_async_exit(held.pop_all())
                    return outcome
                error = _tagged(outcome, target)
        raise error

    @staticmethod
    def _configured(provider: HTTPProvider) -> bool:
        return bool(provider.config.keys) or not provider.config.requires_key

    async def _occupy(self, provider: str, held: AsyncExitStack) -> None:
        """Count the attempt in flight and take a slot of the provider (Overloaded)."""
        self._in_flight[provider] += 1
        held.callback(self._in_flight.subtract, (provider,))
        slots = self._provider_slots.get(provider)
        if slots is not None:
            await _hold(slots, self.config.queue_timeout, held)

    async def _try_target(
        self,
        call: Call,
        provider: HTTPProvider,
        target: Target,
        held: AsyncExitStack,
        deadline: float,
        *,
        alternatives: bool,
    ) -> JSONReply | StreamReply | GatewayError:
        """A reply, or the error to fail over with; raises errors not worth a failover.

        ``alternatives``: the request has another target after this one.
        """
        health = self.health[provider.name]
        retry = 0
        error: GatewayError | None = None
        refused: set[str | None] = set()  # keys this target answered 401/403/429 to
        failure: Failure
        while True:
            try:
                key = await health.acquire(alternatives=alternatives)
            except BreakerOpen as closed:
                self._on_attempt(provider.name, "skipped_breaker")
                return error or CircuitOpen(provider.name, closed.retry_after)
            except KeysCooling as cooling:
                self._on_attempt(provider.name, "skipped_keys")
                return error or KeysRateLimited(provider.name, cooling.retry_after)
            if error is not None and key in refused:  # rested already ("retry after 0")
                return error
            try:
                reply = await attempt(
                    call, provider, target, key, config=self.config, resources=held
                )
            except UpstreamProtocolError as exc:
                # it answered, if wrongly: retried like a 5xx, never a breaker failure
                failure, error = Failure(exc.status), exc
                await health.record_answer(key, exc.status, None)
                self._on_attempt(provider.name, "bad_answer")
            except (UpstreamUnavailable, UpstreamTimeout) as exc:
                failure, error = Failure(None), exc
                await health.record_failure()
                self._on_attempt(provider.name, "timeout" if exc.status == 504 else "unavailable")
            except UpstreamHTTPError as exc:
                failure, error = Failure(exc.status, exc.wait), exc
                await health.record_answer(key, exc.status, exc.wait)
                if exc.status in KEY_STATUSES:
                    refused.add(key)
                self._on_attempt(provider.name, f"http_{exc.status}")
            else:
                await health.record_answer(key, 200, None)
                self._on_attempt(provider.name, "ok")
                return reply
            retry += 1
            decision = self.policy.decide(
                failure,
                retry=retry,
                remaining=deadline - trio.current_time(),
                key_available=await health.has_key(),
                rng=self._rng,
            )
            if decision.action is Action.GIVE_UP:
                raise error
            if decision.action is Action.NEXT_TARGET:
                return error
            log.info("provider %s: retry %d in %.2fs", provider.name, retry, decision.delay)
            await trio.sleep(decision.delay)

    async def provider_health(self) -> dict[str, dict[str, object]]:
        """Per provider: keys available and cooling (masked), breaker, in-flight."""
        return {
            name: {**await health.snapshot(), "in_flight": self._in_flight[name]}
            for name, health in self.health.items()
        }


def _tagged(error: GatewayError, target: Target) -> GatewayError:
    """``error`` with the ``x-minillm-target`` header of the target that gave it."""
    error.headers = {**error.headers, TARGET_HEADER: str(target)}
    return error


async def _hold(limiter: trio.CapacityLimiter, patience: float, holder: AsyncExitStack) -> None:
    """Take a slot of ``limiter`` until ``holder`` closes; Overloaded after ``patience``."""
    token = object()
    try:
        limiter.acquire_on_behalf_of_nowait(token)  # the common case: no deadline, no yield
    except trio.WouldBlock:
        with trio.move_on_after(patience) as waited:
            await limiter.acquire_on_behalf_of(token)
        if waited.cancelled_caught:
            raise Overloaded(headers={"retry-after": "1"}) from None
    holder.callback(limiter.release_on_behalf_of, token)
