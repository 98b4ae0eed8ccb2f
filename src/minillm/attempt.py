"""One attempt: a client call sent to one target with one key.

Translates the request when the provider speaks the other API, sends it on
the provider's pooled client, and turns the answer into a reply in the
client's format, or into a typed gateway error.  Retries and failover are
decided by the caller (:mod:`minillm.gateway`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncGenerator, Mapping
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import trio

from minillm.config import Config, Target
from minillm.errors import UpstreamHTTPError, UpstreamProtocolError, UpstreamTimeout, WireFormat
from minillm.providers.http import HTTPProvider, Operation, body_chunks, upstream_errors
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

__all__ = ["Call", "JSONReply", "StreamReply", "attempt"]

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

    @property
    def stream(self) -> bool:
        return self.operation == "chat" and self.body.get("stream") is True


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
    chunks: AsyncGenerator[bytes, None]
    """The rest of the upstream body (also registered on the request's exit stack)."""
    first: bytes
    """The first chunk, read before the answer starts: until then a failure can
    still be retried or failed over; ``b""`` when the upstream sent nothing."""


async def attempt(
    call: Call,
    provider: HTTPProvider,
    target: Target,
    key: str | None,
    *,
    config: Config,
    resources: AsyncExitStack,
) -> JSONReply | StreamReply:
    """Send ``call`` to ``target`` once.

    Raises :class:`UpstreamTimeout` when the provider's own ``timeout`` passes
    before the first byte of its answer (of the body, for a stream),
    :class:`UpstreamUnavailable` on connection errors and
    :class:`UpstreamHTTPError` for an error status.
    """
    provider.url_for(call.operation)  # unsupported operations fail before any translation
    body = upstream_body(
        call,
        provider.format,
        target.model,
        config.default_max_tokens,
        reasoning=provider.config.is_reasoning(target.model),
    )
    request = provider.build_request(call.operation, body, call.headers, key)
    response: httpx.Response | None = None
    with upstream_errors(provider.name):
        with trio.move_on_after(provider.config.timeout or math.inf) as first_byte:
            response = await provider.send(request)
            resources.push_async_callback(response.aclose)
            if call.stream and response.status_code < 300:
                chunks = body_chunks(response)
                resources.push_async_callback(chunks.aclose)
                first = await anext(chunks, b"")
        if first_byte.cancelled_caught:
            log.warning("provider %s: no first byte within %ss", provider.name, first_byte.deadline)
            if response is not None:
                await response.aclose()
            raise UpstreamTimeout()
        assert response is not None
        if response.status_code >= 300:
            try:
                raise await _error_from(provider, response)
            finally:
                await response.aclose()
        if call.stream:
            translator = stream_translator(call, provider.format)
            return StreamReply(response, translator, target, chunks, first)
        try:
            answer = await _read_capped(response, MAX_UPSTREAM_BODY)
        finally:
            await response.aclose()
    return JSONReply(client_body(call.client_format, provider, answer), target)


def upstream_body(
    call: Call, fmt: WireFormat, model: str, default_max_tokens: int, *, reasoning: bool = False
) -> bytes:
    """The request body for a provider of API ``fmt``, with the target's model."""
    body = call.body
    if call.client_format == fmt:
        if call.stream and fmt == "openai":  # usage for accounting; see stream_translator
            asked = body.get("stream_options")
            options = {**(asked if isinstance(asked, dict) else {}), "include_usage": True}
            return orjson.dumps({**body, "model": model, "stream_options": options})
        return orjson.dumps({**body, "model": model})
    if fmt == "anthropic":
        return orjson.dumps(
            openai_to_anthropic_request(body, model=model, default_max_tokens=default_max_tokens)
        )
    return orjson.dumps(anthropic_to_openai_request(body, model=model, reasoning=reasoning))


def client_body(client_format: WireFormat, provider: HTTPProvider, body: bytes) -> bytes:
    """The provider's success body, in the client's format."""
    if client_format == provider.format:
        return body
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        log.warning("provider %s answered a body that is not a JSON object", provider.name)
        raise UpstreamProtocolError()
    if client_format == "openai":
        return orjson.dumps(anthropic_to_openai_response(parsed))
    return orjson.dumps(openai_to_anthropic_response(parsed))


def stream_translator(call: Call, provider_format: WireFormat) -> StreamTranslator:
    options = call.body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    if call.client_format == provider_format:
        # the usage chunk the gateway asked for is not forwarded to a client that did not
        return PassthroughStream(drop_usage_chunk=provider_format == "openai" and not include_usage)
    model = str(call.body.get("model"))
    if call.client_format == "openai":
        return AnthropicToOpenAIStream(model=model, include_usage=include_usage)
    return OpenAIToAnthropicStream(model=model)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
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


async def _error_from(provider: HTTPProvider, response: httpx.Response) -> UpstreamHTTPError:
    """The provider's error, read (bounded) and scrubbed of its keys."""
    try:
        body = await _read_capped(response, MAX_ERROR_BODY)
    except UpstreamProtocolError:
        body = b""
    status = response.status_code if response.status_code >= 400 else 502
    log.info("provider %s answered HTTP %s", provider.name, response.status_code)
    error = upstream_error(provider.format, status, body, secrets=provider.secrets)
    error.headers = {
        k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "retry-after-ms")
    }
    return error
