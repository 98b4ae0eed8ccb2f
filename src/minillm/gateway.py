"""The gateway core: route a parsed client request, call the provider, translate.

Framework-free: the Quart layer (:mod:`minillm.server.app`) parses the HTTP
request into a :class:`Call` and renders the :class:`JSONReply` or
:class:`StreamReply` this returns.  Deadlines are Trio cancel scopes owned
here; the httpx client has no timeouts of its own beyond connect.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import trio

from minillm.config import Config, Target
from minillm.errors import (
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
    WireFormat,
)
from minillm.providers.http import HTTPProvider, Operation, upstream_errors
from minillm.routing import resolve_alias
from minillm.translate.passthrough import PassthroughStream
from minillm.translate.requests import anthropic_to_openai_request, openai_to_anthropic_request
from minillm.translate.responses import (
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)
from minillm.translate.streams import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    StreamTranslator,
)
from minillm.translate.upstream_errors import upstream_error

__all__ = ["Call", "Gateway", "JSONReply", "StreamReply"]

log = logging.getLogger("minillm.gateway")

MAX_UPSTREAM_BODY = 64 * 1024 * 1024
MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Call:
    """One client request: the API it speaks, the operation and its JSON body."""

    client_format: WireFormat
    operation: Operation
    body: dict[str, Any]
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class JSONReply:
    """A complete JSON answer, already in the client's format."""

    body: bytes
    target: Target


@dataclass(frozen=True, slots=True)
class StreamReply:
    """An open upstream SSE stream and the translator for the client's format.

    The response is registered on the request's exit stack, so it is closed
    even if the stream is never relayed.
    """

    response: httpx.Response
    translator: StreamTranslator
    target: Target


class Gateway:
    """Routes calls to providers; one instance per running app."""

    def __init__(self, config: Config, providers: Mapping[str, HTTPProvider]) -> None:
        self.config = config
        self.providers = providers

    def route(self, model: object) -> tuple[Target, ...]:
        """The targets for a client's ``model`` field (raises BadRequest)."""
        return resolve_alias(
            model, self.config.aliases, self.providers.keys(), offline=self.config.offline
        )

    async def handle(self, call: Call, resources: AsyncExitStack) -> JSONReply | StreamReply:
        """Serve ``call``; upstream streams are pushed onto ``resources``."""
        target = self.route(call.body.get("model"))[0]
        provider = self.providers[target.provider]
        stream = call.body.get("stream") is True and call.operation == "chat"
        request = provider.build_request(
            call.operation, self._upstream_body(call, provider, target), call.headers
        )
        with trio.move_on_after(self.config.request_timeout) as deadline:
            with upstream_errors(provider.name):
                response = await provider.client.send(request, stream=True)
                resources.push_async_callback(response.aclose)
                if response.status_code >= 300:
                    raise await _error_from(provider, response)
                if stream:
                    return StreamReply(response, self._translator(call, provider, target), target)
                body = await _read_capped(response, MAX_UPSTREAM_BODY)
                await response.aclose()
        if deadline.cancelled_caught:
            log.warning("provider %s: no answer within %ss", provider.name, deadline.deadline)
            raise UpstreamTimeout()
        return JSONReply(self._client_body(call, provider, body), target)

    def _upstream_body(self, call: Call, provider: HTTPProvider, target: Target) -> bytes:
        body = call.body
        if call.client_format == provider.format:
            return orjson.dumps({**body, "model": target.model})
        if provider.format == "anthropic":
            return orjson.dumps(
                openai_to_anthropic_request(
                    body, model=target.model, default_max_tokens=self.config.default_max_tokens
                )
            )
        return orjson.dumps(anthropic_to_openai_request(body, model=target.model))

    def _client_body(self, call: Call, provider: HTTPProvider, body: bytes) -> bytes:
        if call.client_format == provider.format:
            return body
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            log.warning("provider %s answered a body that is not a JSON object", provider.name)
            raise UpstreamProtocolError()
        if call.client_format == "openai":
            return orjson.dumps(anthropic_to_openai_response(parsed))
        return orjson.dumps(openai_to_anthropic_response(parsed))

    def _translator(self, call: Call, provider: HTTPProvider, target: Target) -> StreamTranslator:
        if call.client_format == provider.format:
            return PassthroughStream()
        model = str(call.body.get("model"))
        if call.client_format == "openai":
            options = call.body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            return AnthropicToOpenAIStream(model=model, include_usage=include_usage)
        return OpenAIToAnthropicStream(model=model)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    """The response body, failing when it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise UpstreamProtocolError("Provider response too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _error_from(provider: HTTPProvider, response: httpx.Response) -> UpstreamHTTPError:
    """The provider's error, read (bounded) and scrubbed of its keys."""
    try:
        body = await _read_capped(response, MAX_ERROR_BODY)
    except UpstreamProtocolError:
        body = b""
    status = response.status_code if response.status_code >= 400 else 502
    log.info("provider %s answered HTTP %s", provider.name, response.status_code)
    headers = {
        k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "retry-after-ms")
    }
    error = upstream_error(provider.format, status, body, secrets=provider.secrets)
    error.headers = headers
    return error
