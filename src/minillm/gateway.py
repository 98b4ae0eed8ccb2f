"""The gateway core: admission, routing, retries and failover across targets.

Framework-free: the Quart layer (:mod:`minillm.server.app`) parses the HTTP
request into a :class:`Call` and renders the :class:`JSONReply` or
:class:`StreamReply` this returns.  ``Config.request_timeout`` bounds the
whole call, retries and fallbacks included; the decisions themselves are
made by the sans-I/O :class:`~minillm.policy.RetryPolicy` and
:class:`~minillm.provider_state.ProviderHealth`.

Streams are retried or failed over only before their response starts: once
:meth:`Gateway.handle` has returned a :class:`StreamReply`, a failure ends the
stream with an error event (see :mod:`minillm.server.relay`).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack

import trio

from minillm.attempt import Call, JSONReply, StreamReply, attempt
from minillm.config import Config, Target
from minillm.discovery import ModelDiscovery
from minillm.errors import (
    GatewayError,
    Overloaded,
    ProviderNotConfigured,
    UpstreamHTTPError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from minillm.policy import Action, Failure, RetryPolicy, parse_retry_after
from minillm.provider_state import BreakerSettings, KeysCooling, LocalHealth, ProviderHealth
from minillm.providers.http import HTTPProvider
from minillm.routing import resolve_alias

__all__ = ["Call", "Gateway", "JSONReply", "StreamReply"]

log = logging.getLogger("minillm.gateway")

TARGET_HEADER = "x-minillm-target"

AttemptObserver = Callable[[str, str], None]


def _ignore_attempt(provider: str, outcome: str) -> None:
    pass


class Gateway:
    """Routes calls to providers; one instance per running app.

    ``on_attempt(provider, outcome)`` is told of every upstream attempt;
    ``outcome`` is ``ok``, ``unavailable``, ``timeout``, ``http_<status>``,
    ``skipped_breaker``, ``skipped_keys`` or ``skipped_busy``.
    """

    def __init__(
        self,
        config: Config,
        providers: Mapping[str, HTTPProvider],
        *,
        on_attempt: AttemptObserver = _ignore_attempt,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.providers = providers
        self.policy = RetryPolicy(retries=config.retries)
        settings = BreakerSettings(
            failures=config.breaker_failures,
            cooldown=config.breaker_cooldown_s,
            key_cooldown=config.key_cooldown,
            key_disable=config.key_disable_s,
        )
        self.health: dict[str, ProviderHealth] = {
            name: LocalHealth(name, p.config.keys, settings) for name, p in providers.items()
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

        Slots and upstream responses are registered on ``resources`` and
        released when the caller closes it, after the stream was relayed.
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
        error: GatewayError = UpstreamUnavailable()
        for target in targets:
            provider = self.providers[target.provider]
            if provider.config.requires_key and not provider.config.keys:
                error = ProviderNotConfigured(
                    f"No API key configured for provider '{provider.name}'"
                )
                continue
            self._in_flight[provider.name] += 1
            resources.callback(self._in_flight.subtract, (provider.name,))
            slots = self._provider_slots.get(provider.name)
            if slots is not None:
                try:
                    await _hold(slots, self.config.queue_timeout, resources)
                except Overloaded as busy:
                    self._on_attempt(provider.name, "skipped_busy")
                    error = busy
                    continue
            try:
                outcome = await self._try_target(call, provider, target, resources, deadline)
            except GatewayError as exc:
                raise _tagged(exc, target) from None
            if not isinstance(outcome, GatewayError):
                return outcome
            error = _tagged(outcome, target)
        raise error

    async def _try_target(
        self,
        call: Call,
        provider: HTTPProvider,
        target: Target,
        resources: AsyncExitStack,
        deadline: float,
    ) -> JSONReply | StreamReply | GatewayError:
        """A reply, or the error to fail over with; raises errors not worth a failover."""
        health = self.health[provider.name]
        retry = 0
        error: GatewayError
        failure: Failure
        while True:
            now = trio.current_time()
            if not health.allows(now):
                self._on_attempt(provider.name, "skipped_breaker")
                return UpstreamUnavailable()
            try:
                key = health.acquire_key(now)
            except KeysCooling as cooling:
                self._on_attempt(provider.name, "skipped_keys")
                return _all_keys_cooling(provider.name, cooling.retry_after)
            try:
                reply = await attempt(
                    call, provider, target, key, config=self.config, resources=resources
                )
            except (UpstreamUnavailable, UpstreamTimeout) as exc:
                failure, error = Failure(None), exc
                health.record_failure(trio.current_time())
                self._on_attempt(provider.name, "timeout" if exc.status == 504 else "unavailable")
            except UpstreamHTTPError as exc:
                failure, error = self._key_failure(health, key, exc), exc
                self._on_attempt(provider.name, f"http_{exc.status}")
            else:
                health.record_success()
                self._on_attempt(provider.name, "ok")
                return reply
            retry += 1
            key_available = health.has_key(trio.current_time())
            if failure.status == 429 and not key_available:
                continue  # answered as "every key cooling", with the soonest recovery
            decision = self.policy.decide(
                failure,
                retry=retry,
                remaining=deadline - trio.current_time(),
                key_available=key_available,
                rng=self._rng,
            )
            if decision.action is Action.GIVE_UP:
                raise error
            if decision.action is Action.NEXT_TARGET:
                return error
            log.info("provider %s: retry %d in %.2fs", provider.name, retry, decision.delay)
            await trio.sleep(decision.delay)

    @staticmethod
    def _key_failure(health: ProviderHealth, key: str | None, exc: UpstreamHTTPError) -> Failure:
        failure = Failure(exc.status, parse_retry_after(exc.headers, time.time()))
        now = trio.current_time()
        health.record_success()  # it answered: the provider is up
        if exc.status == 429:
            health.cool_key(key, failure.retry_after, now)
        elif exc.status in (401, 403):
            health.disable_key(key, now)
        return failure

    def provider_health(self) -> dict[str, dict[str, object]]:
        """Per provider: keys available and cooling (masked), breaker, in-flight."""
        now = trio.current_time()
        return {
            name: {**health.snapshot(now), "in_flight": self._in_flight[name]}
            for name, health in self.health.items()
        }


def _tagged(error: GatewayError, target: Target) -> GatewayError:
    """``error`` with the ``x-minillm-target`` header of the target that gave it."""
    error.headers = {**error.headers, TARGET_HEADER: str(target)}
    return error


def _all_keys_cooling(provider: str, retry_after: float) -> UpstreamHTTPError:
    seconds = max(1, math.ceil(retry_after))
    return UpstreamHTTPError(
        429,
        f"Every key of provider '{provider}' is rate limited; retry after {seconds}s",
        headers={"retry-after": str(seconds)},
    )


async def _hold(limiter: trio.CapacityLimiter, patience: float, resources: AsyncExitStack) -> None:
    """Take a slot of ``limiter`` until ``resources`` closes; Overloaded after ``patience``."""
    token = object()
    with trio.move_on_after(patience):
        await limiter.acquire_on_behalf_of(token)
        resources.callback(limiter.release_on_behalf_of, token)
        return
    raise Overloaded(headers={"retry-after": "1"})
