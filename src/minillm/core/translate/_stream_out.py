"""Downstream SSE framing shared by the stream translators."""

from __future__ import annotations

from typing import Any

import orjson

from minillm.core.errors import GatewayError, UpstreamProtocolError, WireFormat, error_body
from minillm.core.sse import encode_event

DONE = b"data: [DONE]\n\n"


def openai_data(obj: dict[str, Any]) -> bytes:
    """An OpenAI stream event: ``data: <json>`` with no event name."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def anthropic_event(obj: dict[str, Any]) -> bytes:
    """An Anthropic stream event, named after its ``type`` (the SDK skips unnamed events)."""
    name: str = obj["type"]
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def stream_cut(*, started: bool) -> UpstreamProtocolError:
    """The error for an upstream stream that ended before its finish (or before any event)."""
    return UpstreamProtocolError(
        f"Provider stream ended before it {'finished' if started else 'started'}"
    )


def stream_error(fmt: WireFormat, exc: GatewayError) -> bytes:
    """The SSE bytes that end a stream with ``exc`` in API ``fmt``.

    OpenAI: ``data: {"error": {...}}`` -- the openai SDK raises ``APIError`` on
    any chunk with a truthy ``error`` key; no ``[DONE]`` follows.  Anthropic:
    ``event: error`` with ``{"type": "error", "error": {...}}``, on which the
    anthropic SDK raises its status error.
    """
    body = orjson.dumps(error_body(fmt, exc.kind, exc.message))
    return encode_event(body, "error" if fmt == "anthropic" else None)
