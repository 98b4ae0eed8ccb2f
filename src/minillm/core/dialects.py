"""The client APIs the gateway serves, one small entry each.

Clients call three APIs -- OpenAI Chat Completions, Anthropic Messages and
OpenAI Responses -- while providers speak the first two
(:data:`~minillm.core.errors.WireFormat`).  What differs between the client APIs at
the gateway's edges is listed here: the name recorded in usage rows, the shape
of error bodies, and the event that ends a stream with an error.  Which
translation a call needs for one provider is decided in :mod:`minillm.runtime.exchange`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Literal

from minillm.core.errors import GatewayError, WireFormat, render_error
from minillm.core.translate import responses_stream_error, stream_error

__all__ = ["DIALECTS", "ClientAPI", "Dialect", "dialect_of"]

ClientAPI = Literal["openai", "anthropic", "responses"]


@dataclass(frozen=True, slots=True)
class Dialect:
    """One client API: its name, its error shape and its stream error event."""

    name: ClientAPI
    errors: WireFormat
    """The API whose error body shape this one uses (Responses errors are OpenAI's)."""
    stream_error: Callable[[GatewayError], bytes]
    """The SSE bytes that end a stream of this API with an error."""

    def render_error(self, exc: GatewayError, request_id: str | None = None) -> bytes:
        return render_error(self.errors, exc, request_id)


DIALECTS: Mapping[ClientAPI, Dialect] = {
    "openai": Dialect("openai", "openai", partial(stream_error, "openai")),
    "anthropic": Dialect("anthropic", "anthropic", partial(stream_error, "anthropic")),
    "responses": Dialect("responses", "openai", responses_stream_error),
}


def dialect_of(path: str) -> Dialect:
    """The API a path belongs to, which decides the shape of its errors and usage rows."""
    if path.endswith("/v1/responses"):
        return DIALECTS["responses"]
    if path.startswith("/anthropic/") or "/v1/messages" in path:
        return DIALECTS["anthropic"]
    return DIALECTS["openai"]
