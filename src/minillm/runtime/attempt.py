"""One attempt: a client call sent to one target with one key.

Translates the request when the provider speaks another API (see
its dialect, :mod:`minillm.core.dialects`), sends it on
the provider's pooled client, and turns the answer into a reply in the
client's format, or into a typed gateway error.  Retries and failover are
decided by the caller (:mod:`minillm.runtime.gateway`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeAlias

import orjson
import trio

from minillm.core.config import Config, Target
from minillm.core.dialects import exchange
from minillm.core.errors import UpstreamHTTPError, UpstreamProtocolError, UpstreamTimeout
from minillm.core.exchange import Call, Exchange
from minillm.core.policy import provider_wait
from minillm.core.translate.streams import StreamTranslator
from minillm.core.translate.upstream_errors import upstream_error
from minillm.runtime.providers.http import (
    HTTPProvider,
    UpstreamRequest,
    UpstreamResponse,
    body_chunks,
    read_capped,
    upstream_errors,
)

__all__ = ["Call", "JSONReply", "StreamReply", "attempt"]

log = logging.getLogger("minillm.gateway")

MAX_UPSTREAM_BODY = 64 * 1024 * 1024
MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class JSONReply:
    """A complete JSON answer, already in the client's format."""

    body: bytes
    target: Target
    dropped_tools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamReply:
    """An open upstream SSE stream and the translator for the client's format.

    The response is registered on the request's exit stack, so it is closed
    even if the stream is never relayed.
    """

    response: UpstreamResponse
    translator: StreamTranslator
    target: Target
    chunks: AsyncGenerator[bytes, None]
    """The rest of the upstream body (also registered on the request's exit stack)."""
    first: bytes
    """The first chunk, read before the answer starts: until then a failure can
    still be retried or failed over; ``b""`` when the upstream sent nothing."""
    dropped_tools: tuple[str, ...] = ()


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
    crossing = exchange(call, provider.config, target.model, config.default_max_tokens)
    # an operation the provider's API lacks is not translated: it fails here, before sending
    request = provider.build_request(crossing.operation, crossing.body, call.headers, key)
    with upstream_errors(provider.name):
        response, chunks, first = await _first_byte(call, provider, request)
        # this attempt's response: closed here when it fails or is read; a stream's is
        # registered on ``resources``, which the caller closes once it is relayed
        try:
            if response.status_code >= 300:
                raise await _error_from(provider, response)
            if chunks is None:
                answer = await read_capped(response, MAX_UPSTREAM_BODY)
            elif not _is_event_stream(response.headers.get("content-type"), first):
                log.warning("provider %s answered a stream request without a stream", provider.name)
                raise UpstreamProtocolError()
        except BaseException:
            await _close(response, chunks)
            raise
        if chunks is not None:
            resources.push_async_callback(response.aclose)
            resources.push_async_callback(chunks.aclose)
            translator = crossing.stream()
            return StreamReply(response, translator, target, chunks, first, crossing.dropped_tools)
        await response.aclose()
    return JSONReply(client_body(crossing, provider, answer), target, crossing.dropped_tools)


_Opened: TypeAlias = tuple[UpstreamResponse, AsyncGenerator[bytes, None] | None, bytes]


async def _first_byte(call: Call, provider: HTTPProvider, request: UpstreamRequest) -> _Opened:
    """Send ``request`` and, for a stream answered with success, read the first chunk
    (``b""`` if none), within the provider's ``timeout``; the body chunks are ``None``
    for anything else."""
    timeout = provider.config.timeout
    if timeout is None:  # no deadline, so no cancel scope either
        return await _send(call, provider, request)
    with trio.move_on_after(timeout):
        return await _send(call, provider, request)
    log.warning("provider %s: no first byte within %ss", provider.name, timeout)
    raise UpstreamTimeout()


async def _send(call: Call, provider: HTTPProvider, request: UpstreamRequest) -> _Opened:
    response = await provider.send(request)
    if not call.stream or response.status_code >= 300:
        return response, None, b""
    chunks = body_chunks(response)
    try:
        first = await anext(chunks, b"")
    except BaseException:
        await _close(response, chunks)
        raise
    return response, chunks, first


async def _close(response: UpstreamResponse, chunks: AsyncGenerator[bytes, None] | None) -> None:
    if chunks is not None:
        await chunks.aclose()
    await response.aclose()


def _is_event_stream(content_type: str | None, first: bytes) -> bool:
    """Whether a 200 answer to a stream request is a stream: its content type says so,
    or (with none) its first bytes are an SSE field; never relay a plain body as one."""
    if content_type:
        return "event-stream" in content_type.lower()
    return not first.strip() or first.lstrip().startswith(_SSE_FIELDS)


_SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")


def client_body(crossing: Exchange, provider: HTTPProvider, body: bytes) -> bytes:
    """The provider's success body, in the client's format (checked to be a JSON
    object even when it goes back as it is)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        log.warning("provider %s answered a body that is not a JSON object", provider.name)
        raise UpstreamProtocolError()
    if crossing.reply is None:
        answer = _ANSWER_LIST.get((crossing.operation, provider.format))
        if answer is not None and not isinstance(parsed.get(answer), list):
            log.warning("provider %s answered without %r", provider.name, answer)
            raise UpstreamProtocolError()
        return body
    return orjson.dumps(crossing.reply(parsed))


# The list a chat answer passed back as it is must carry (translations check their own input).
_ANSWER_LIST = {
    ("chat", "openai"): "choices",
    ("chat", "anthropic"): "content",
    ("responses", "openai"): "output",
}


async def _error_from(provider: HTTPProvider, response: UpstreamResponse) -> UpstreamHTTPError:
    """The provider's error, read (bounded) and scrubbed of its keys."""
    try:
        body = await read_capped(response, MAX_ERROR_BODY)
    except UpstreamProtocolError:
        body = b""
    status = response.status_code if response.status_code >= 400 else 502
    log.info("provider %s answered HTTP %s", provider.name, response.status_code)
    error = upstream_error(provider.format, status, body, secrets=provider.secrets)
    error.headers = {
        k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "retry-after-ms")
    }
    error.wait = provider_wait(status, response.headers, time.time())
    return error
