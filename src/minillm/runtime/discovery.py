"""Model discovery: what each OpenAI-format provider's ``/models`` reports.

Enabled with ``MINI_LLM_DISCOVER_MODELS=1``.  Providers are asked
concurrently, each within ``timeout`` seconds; the answer is cached for
``ttl`` seconds.  A provider that is down, slow or answers garbage simply
contributes nothing: it never fails ``GET /v1/models``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
import trio

from minillm.runtime.providers.http import HTTPProvider, TransportError

__all__ = ["ModelDiscovery"]

log = logging.getLogger("minillm.discovery")


class ModelDiscovery:
    """Cached ``provider:model`` names from the providers' model lists."""

    def __init__(
        self, providers: Mapping[str, HTTPProvider], *, ttl: float = 60.0, timeout: float = 3.0
    ) -> None:
        self._providers = [
            p
            for p in providers.values()
            if p.format == "openai" and (p.config.keys or not p.config.requires_key)
        ]
        self._ttl = ttl
        self._timeout = timeout
        self._cached: list[tuple[str, str]] = []
        self._expires = -1.0
        self._lock = trio.Lock()

    async def models(self) -> list[tuple[str, str]]:
        """``(provider, model id)`` pairs, refreshed at most once per ``ttl``."""
        async with self._lock:
            if trio.current_time() >= self._expires:
                found: list[tuple[str, str]] = []
                async with trio.open_nursery() as nursery:
                    for provider in self._providers:
                        nursery.start_soon(self._ask, provider, found)
                self._cached = sorted(found)
                self._expires = trio.current_time() + self._ttl
            return self._cached

    async def _ask(self, provider: HTTPProvider, found: list[tuple[str, str]]) -> None:
        key = provider.config.keys[0] if provider.config.keys else None
        request = provider.build_request("models", None, {}, key)
        with trio.move_on_after(self._timeout):
            try:
                response = await provider.send(request)
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
                listing = orjson.loads(content) if response.status_code == 200 else {}
            except (TransportError, orjson.JSONDecodeError) as exc:
                log.info("provider %s: model list unavailable: %r", provider.name, exc)
                return
            data = listing.get("data") if isinstance(listing, dict) else None
            for entry in data if isinstance(data, list) else []:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    found.append((provider.name, entry["id"]))
