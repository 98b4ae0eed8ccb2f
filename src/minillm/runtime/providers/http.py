"""The HTTP provider adapter and the pool of clients behind it.

In the gateway only this package (with :mod:`~minillm.runtime.providers.h1` and the mock)
imports httpx: the rest sees :data:`UpstreamRequest`, :data:`UpstreamResponse`,
:func:`body_chunks`, :func:`read_capped` and :data:`TransportError`.  Foreign exceptions
are mapped to gateway errors at this seam by :func:`upstream_errors`.
"""

from __future__ import annotations

import logging
import ssl
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, aclosing, asynccontextmanager, contextmanager
from typing import TypeAlias, cast

import httpx

from minillm._version import __version__
from minillm.core.auth import is_loopback
from minillm.core.config import Config, ProviderConfig
from minillm.core.errors import (
    BadRequest,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from minillm.core.exchange import Operation
from minillm.runtime.providers.h1 import H1Transport
from minillm.runtime.providers.mock import MockTransport

__all__ = [
    "HTTPProvider",
    "Operation",
    "TransportError",
    "UpstreamRequest",
    "UpstreamResponse",
    "body_chunks",
    "open_providers",
    "read_capped",
    "upstream_errors",
]

log = logging.getLogger("minillm.upstream")

UpstreamRequest: TypeAlias = httpx.Request  # built by HTTPProvider.build_request
UpstreamResponse: TypeAlias = httpx.Response  # an answer whose body is still to be read
TransportError = httpx.HTTPError  # what sending or reading may raise, unmapped

_PATHS: Mapping[str, Mapping[str, str]] = {
    "openai": {
        "chat": "/chat/completions",
        "responses": "/responses",
        "embeddings": "/embeddings",
        "models": "/models",
    },
    "anthropic": {
        "chat": "/v1/messages",
        "models": "/v1/models",
        "count_tokens": "/v1/messages/count_tokens",
    },
}
ANTHROPIC_VERSION = "2023-06-01"
_USER_AGENT = f"minillm/{__version__}"
# Deadlines are Trio's (the caller's cancel scopes); httpx only bounds connect.
_EXTENSIONS = {"timeout": {"connect": 10.0, "read": None, "write": None, "pool": None}}


class HTTPProvider:
    """One provider: its config and its connection pool (an httpx transport:
    :mod:`minillm.runtime.providers.h1`, or httpx's own behind a proxy).

    Keys are chosen by the caller (:mod:`minillm.core.provider_state`).  The
    client's own credentials are never forwarded; the only client headers
    passed on are Anthropic's
    ``anthropic-version`` and ``anthropic-beta`` (to Anthropic-format
    providers) and the request id.
    """

    def __init__(self, config: ProviderConfig, transport: httpx.AsyncBaseTransport) -> None:
        self.config = config
        self.name = config.name
        self.format = config.format
        self.transport = transport
        self._urls = {
            op: httpx.URL(config.base_url + path) for op, path in _PATHS[self.format].items()
        }

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
        url = self.url_for(operation)
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
        return httpx.Request(method, url, content=body, headers=headers, extensions=_EXTENSIONS)

    def url_for(self, operation: Operation) -> httpx.URL:
        """The endpoint of ``operation``; BadRequest if this provider's API has none."""
        url = self._urls.get(operation)
        if url is None:
            raise BadRequest(f"Provider '{self.name}' does not support {operation}")
        return url

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send on the pooled transport; the body is left unread (stream it, then close).

        The transport is called directly, not through an ``httpx.AsyncClient``:
        a gateway needs none of the client's cookie jar, redirects, auth flows
        or URL merging, and they cost more than the rest of the call.
        """
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response


def body_chunks(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The response body as it arrives, to be closed with ``aclosing``.

    Straight from the transport's stream (we never ask for compression, so
    there is nothing to decode), without the two generator layers and the
    per-chunk context manager of ``aiter_bytes``; a compressed body (a server
    that compresses unasked) still goes through httpx's decoders.
    """
    if "content-encoding" in response.headers:
        return cast(AsyncGenerator[bytes, None], response.aiter_bytes())
    stream = cast(httpx.AsyncByteStream, response.stream)
    return cast(AsyncGenerator[bytes, None], stream.__aiter__())


async def read_capped(response: UpstreamResponse, limit: int) -> bytes:
    """The response body, failing when it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async with aclosing(body_chunks(response)) as body:
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                raise UpstreamProtocolError("Provider response too large")
            chunks.append(chunk)
    return b"".join(chunks)


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


def proxy_for(base_url: str) -> str | None:
    """The proxy the environment asks for (``HTTPS_PROXY``/``HTTP_PROXY``,
    ``ALL_PROXY``), unless ``NO_PROXY`` exempts the URL's host.  Loopback hosts
    (a local vLLM or Ollama) are never proxied."""
    url = httpx.URL(base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or is_loopback(url.host) or urllib.request.proxy_bypass(url.host):
        return None
    return proxy


def _transport_for(
    provider: ProviderConfig, config: Config, tls: ssl.SSLContext
) -> httpx.AsyncBaseTransport:
    if provider.is_mock:
        return MockTransport(chunk_delay=config.mock_chunk_delay)
    limits = httpx.Limits(
        max_connections=config.max_connections,
        max_keepalive_connections=config.max_keepalive,
        keepalive_expiry=30.0,
    )
    if proxy := proxy_for(provider.base_url):
        return httpx.AsyncHTTPTransport(verify=tls, limits=limits, proxy=proxy, retries=0)
    return H1Transport(tls, limits)


@asynccontextmanager
async def open_providers(config: Config) -> AsyncIterator[dict[str, HTTPProvider]]:
    """Open one connection pool per configured provider; close them all on exit."""
    tls = httpx.create_ssl_context()  # one for all providers: each holds the CA bundle (~1 MB)
    async with AsyncExitStack() as stack:
        providers = {}
        for name, provider in config.providers.items():
            transport = await stack.enter_async_context(_transport_for(provider, config, tls))
            providers[name] = HTTPProvider(provider, transport)
        yield providers
