"""The client APIs the gateway serves, one object each.

Clients call three APIs -- OpenAI Chat Completions, Anthropic Messages and
OpenAI Responses -- while providers speak the first two
(:data:`~minillm.core.errors.WireFormat`).  A :class:`Dialect` is all that
differs between them: its routes (path, operation, metrics endpoint), the shape
of its error bodies, the event that ends its streams with an error, and how a
call crosses to a provider of each format (:mod:`minillm.core.exchange`).
Adding a client API means adding one object here and its translators.

Token counts need no entry: :func:`~minillm.core.tokens.tokens_from_usage`
reads the ``usage`` object of every API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from minillm.core.config import ProviderConfig
from minillm.core.errors import GatewayError, WireFormat, render_error
from minillm.core.exchange import (
    Call,
    ClientAPI,
    Crossing,
    Exchange,
    Operation,
    chat_via_messages,
    messages_via_chat,
    responses_via_chat,
    responses_via_messages,
    same_api,
)
from minillm.core.translate import responses_stream_error, stream_error

__all__ = [
    "DIALECTS",
    "ClientAPI",
    "Dialect",
    "Route",
    "dialect_of",
    "endpoint_of",
    "exchange",
]

API_PREFIXES = ("/v1/", "/openai/v1/", "/anthropic/v1/")


@dataclass(frozen=True, slots=True)
class Route:
    """One ``POST`` path of a client API (also served under ``/openai`` and ``/anthropic``)."""

    path: str
    operation: Operation
    endpoint: str
    """The ``endpoint`` label of metrics and usage rows."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """One client API: its routes, its error shape, its stream error event, its crossings."""

    name: ClientAPI
    routes: tuple[Route, ...]
    errors: WireFormat
    """The API whose error body shape this one uses (Responses errors are OpenAI's)."""
    stream_error: Callable[[GatewayError], bytes]
    """The SSE bytes that end a stream of this API with an error."""
    crossings: Mapping[WireFormat, Crossing]
    """How a call crosses to a provider of each format that does not serve this API."""

    def render_error(self, exc: GatewayError, request_id: str | None = None) -> bytes:
        return render_error(self.errors, exc, request_id)

    def exchange(
        self, call: Call, provider: ProviderConfig, model: str, default_max_tokens: int
    ) -> Exchange:
        """``call`` for ``provider``, asking for ``model``."""
        if provider.serves(self.name) or call.operation not in ("chat", "responses"):
            return same_api(call, provider, model, default_max_tokens)
        return self.crossings[provider.format](call, provider, model, default_max_tokens)


DIALECTS: Mapping[ClientAPI, Dialect] = {
    "openai": Dialect(
        "openai",
        (
            Route("/v1/chat/completions", "chat", "chat_completions"),
            Route("/v1/embeddings", "embeddings", "embeddings"),
        ),
        "openai",
        partial(stream_error, "openai"),
        {"anthropic": chat_via_messages},
    ),
    "responses": Dialect(
        "responses",
        (Route("/v1/responses", "responses", "responses"),),
        "openai",
        responses_stream_error,
        {"openai": responses_via_chat, "anthropic": responses_via_messages},
    ),
    "anthropic": Dialect(
        "anthropic",
        (
            Route("/v1/messages", "chat", "messages"),
            Route("/v1/messages/count_tokens", "count_tokens", "count_tokens"),
        ),
        "anthropic",
        partial(stream_error, "anthropic"),
        {"openai": messages_via_chat},
    ),
}

_ENDPOINTS = {
    route.path: route.endpoint for dialect in DIALECTS.values() for route in dialect.routes
} | {"/v1/models": "models"}


def exchange(call: Call, provider: ProviderConfig, model: str, default_max_tokens: int) -> Exchange:
    """``call`` for ``provider``, asking for ``model``, as the call's dialect crosses."""
    return DIALECTS[call.client_format].exchange(call, provider, model, default_max_tokens)


def dialect_of(path: str) -> Dialect:
    """The API a path belongs to, which decides the shape of its errors and usage rows."""
    if path.endswith("/v1/responses"):
        return DIALECTS["responses"]
    if path.startswith("/anthropic/") or "/v1/messages" in path:
        return DIALECTS["anthropic"]
    return DIALECTS["openai"]


def endpoint_of(path: str) -> str | None:
    """The metrics ``endpoint`` label of an API path; ``None`` for non-API paths."""
    if not path.startswith(API_PREFIXES):
        return None
    if not path.startswith("/v1/"):
        path = path[path.index("/v1/") :]
    return _ENDPOINTS.get(path, "other")
