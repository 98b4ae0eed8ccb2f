"""The HTTP provider adapter and the pool of clients behind it.

Only this module and :mod:`minillm.server.relay` touch httpx.  Foreign
exceptions are mapped to gateway errors at this seam by :func:`upstream_errors`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Literal

import httpx

from minillm import __version__
from minillm.config import Config, ProviderConfig
from minillm.errors import BadRequest, UpstreamTimeout, UpstreamUnavailable
from minillm.providers.mock import MockTransport

__all__ = ["HTTPProvider", "Operation", "open_providers", "upstream_errors"]

log = logging.getLogger("minillm.upstream")

Operation = Literal["chat", "embeddings", "models"]

_PATHS: Mapping[str, Mapping[str, str]] = {
    "openai": {"chat": "/chat/completions", "embeddings": "/embeddings", "models": "/models"},
    "anthropic": {"chat": "/v1/messages", "models": "/v1/models"},
}
ANTHROPIC_VERSION = "2023-06-01"
_USER_AGENT = f"minillm/{__version__}"


class HTTPProvider:
    """One provider: its config and its pooled client.

    Keys are chosen by the caller (:mod:`minillm.provider_state`).  The
    client's own credentials are never forwarded; the only client headers
    passed on are Anthropic's
    ``anthropic-version`` and ``anthropic-beta`` (to Anthropic-format
    providers) and the request id.
    """

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.name = config.name
        self.format = config.format
        self.client = client

    @property
    def secrets(self) -> tuple[str, ...]:
        """The keys, for scrubbing provider error messages."""
        return self.config.keys

    def build_request(
        self,
        operation: Operation,
        body: bytes | None,
        client_headers: Mapping[str, str],
        key: str | None,
    ) -> httpx.Request:
        """The upstream request for ``operation``, authenticated with ``key``."""
        path = _PATHS[self.format].get(operation)
        if path is None:
            raise BadRequest(f"Provider '{self.name}' does not support {operation}")
        headers = {"user-agent": _USER_AGENT, "accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        if self.format == "anthropic":
            headers["anthropic-version"] = client_headers.get(
                "anthropic-version", ANTHROPIC_VERSION
            )
            if beta := client_headers.get("anthropic-beta"):
                headers["anthropic-beta"] = beta
            if key is not None:
                headers["x-api-key"] = key
        elif key is not None:
            headers["authorization"] = f"Bearer {key}"
        if request_id := client_headers.get("x-request-id"):
            headers["x-request-id"] = request_id
        headers.update(self.config.headers)
        method = "GET" if body is None else "POST"
        return self.client.build_request(
            method, self.config.base_url + path, content=body, headers=headers
        )


@contextmanager
def upstream_errors(provider: str) -> Iterator[None]:
    """Map httpx exceptions to gateway errors; the details go to the log only."""
    try:
        yield
    except httpx.TimeoutException as exc:
        log.warning("provider %s timed out: %r", provider, exc)
        raise UpstreamTimeout() from exc
    except (httpx.HTTPError, httpx.StreamError) as exc:
        log.warning("provider %s unavailable: %r", provider, exc)
        raise UpstreamUnavailable() from exc


def _client_for(provider: ProviderConfig, config: Config) -> httpx.AsyncClient:
    transport: httpx.AsyncBaseTransport
    if provider.name == "mock":
        transport = MockTransport(chunk_delay=config.mock_chunk_delay)
    else:
        transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_keepalive,
                keepalive_expiry=30.0,
            ),
            retries=0,
        )
    # Deadlines are Trio's (the caller's cancel scopes); httpx only bounds connect.
    timeout = httpx.Timeout(connect=10.0, read=None, write=None, pool=None)
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)


@asynccontextmanager
async def open_providers(config: Config) -> AsyncIterator[dict[str, HTTPProvider]]:
    """Open one pooled client per configured provider; close them all on exit."""
    async with AsyncExitStack() as stack:
        providers = {}
        for name, provider in config.providers.items():
            client = await stack.enter_async_context(_client_for(provider, config))
            providers[name] = HTTPProvider(provider, client)
        yield providers
