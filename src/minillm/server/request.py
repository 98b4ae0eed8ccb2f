"""One request's notes while it is served, and its record once it is done.

The middleware (:mod:`minillm.server.scope`) opens a :class:`RequestNotes` for
every HTTP request and passes it down in the ASGI scope (:func:`notes_of`); the
handlers note what they learn through its methods.  When the response is done
the middleware freezes the notes into a :class:`RequestRecord`, a plain value
handed to the records (metrics, usage, charges) and the access log.

The request id also sits in a ContextVar for log records; only the middleware
sets it (:func:`request_id_scope`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AsyncExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from minillm.core.auth import GatewayKey
from minillm.core.errors import GatewayError
from minillm.core.tokens import Tokens, tokens_from_usage, usage_in_json
from minillm.core.translate.streams import StreamTranslator
from minillm.runtime.attempt import JSONReply, StreamReply

__all__ = [
    "RequestNotes",
    "RequestRecord",
    "Served",
    "current_request_id",
    "notes_of",
    "request_id_scope",
]

_SCOPE_KEY = "minillm.request"
_request_id: ContextVar[str | None] = ContextVar("minillm_request_id", default=None)


@dataclass(frozen=True, slots=True)
class Served:
    """What the handlers learned: the key, the model asked for, where the call went, and
    why it was refused."""

    key: GatewayKey | None = None
    model: str = "-"
    target: str = "-"
    provider: str | None = None
    model_served: str | None = None
    rejection: str | None = None
    dropped_tools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A finished request: what the records and the access log need, as a value."""

    request_id: str
    method: str
    path: str
    status: int
    """The status sent; 0 when the client went away before any response."""
    elapsed: float
    """Seconds from the request to the end of the response."""
    ttfb: float | None = None
    """Seconds to the first body byte, if one was sent."""
    wall: float = 0.0
    """The start, as a Unix time."""
    served: Served = Served()
    tokens: Tokens = field(default_factory=Tokens)


@dataclass(slots=True)
class RequestNotes:
    """What the handlers learn about their request; changed through its methods only."""

    request_id: str
    started: float
    """perf_counter at the start."""
    resources: AsyncExitStack = field(default_factory=AsyncExitStack)
    status: int = 0
    first_byte: float | None = None
    served: Served = Served()
    stream: StreamTranslator | None = None  # its token counts, once relayed
    reply_body: bytes | None = None  # a JSON reply: usage parsed only if needed

    def note_key(self, key: GatewayKey | None) -> None:
        """The gateway key the request was admitted with."""
        self.served = replace(self.served, key=key)

    def note_model(self, model: object) -> None:
        """The model the client asked for (cut to 100 characters)."""
        self.served = replace(self.served, model=str(model)[:100])

    def note_reply(self, reply: JSONReply | StreamReply) -> None:
        """Where the gateway sent the request, and where its token counts will be."""
        where = reply.target
        self.served = replace(
            self.served,
            target=str(where),
            provider=where.provider,
            model_served=where.model,
            dropped_tools=reply.dropped_tools,
        )
        if isinstance(reply, JSONReply):
            self.reply_body = reply.body
        else:
            self.stream = reply.translator

    def note_error(self, rejection: str | None, target: str | None) -> None:
        """An error answer: why it was refused (the first reason wins) and the target that
        gave it (``provider:model``), if one did."""
        served = replace(
            self.served,
            rejection=self.served.rejection if self.served.rejection is not None else rejection,
        )
        if target is not None:
            provider, _, model = target.partition(":")
            served = replace(served, target=target, provider=provider, model_served=model)
        self.served = served

    def note_stream_error(self, exc: GatewayError) -> None:
        """The stream (sent as 200) ended with ``exc`` as its error event: it failed."""
        self.status = exc.status

    def record(self, method: str, path: str, wall: float, elapsed: float) -> RequestRecord:
        """The notes, frozen once the response is done."""
        ttfb = None if self.first_byte is None else self.first_byte - self.started
        return RequestRecord(
            request_id=self.request_id,
            method=method,
            path=path,
            status=self.status,
            elapsed=elapsed,
            ttfb=ttfb,
            wall=wall,
            served=self.served,
            tokens=self._tokens(),
        )

    def _tokens(self) -> Tokens:
        if self.stream is not None:
            counted: Tokens | None = getattr(self.stream, "tokens", None)
            if counted is not None:
                return counted
            return Tokens(self.stream.input_tokens, self.stream.output_tokens)
        if self.reply_body is not None and self.status == 200:
            return tokens_from_usage(usage_in_json(self.reply_body))
        return Tokens()


def notes_of(scope: Mapping[str, object]) -> RequestNotes:
    """The notes the middleware passed down in an ASGI scope (Quart: ``request.scope``)."""
    notes = scope[_SCOPE_KEY]
    assert isinstance(notes, RequestNotes)
    return notes


@contextmanager
def request_id_scope(scope: MutableMapping[str, Any], notes: RequestNotes) -> Iterator[None]:
    """Pass ``notes`` down in ``scope`` and show its request id to log records."""
    scope[_SCOPE_KEY] = notes
    token = _request_id.set(notes.request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def current_request_id() -> str | None:
    """The id of the request being handled by this task, if any (for log lines)."""
    return _request_id.get()
