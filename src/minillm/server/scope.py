"""Per-request state: resources to close, the request id, the access-log line.

:class:`RequestScope` is ASGI middleware around the Quart app.  For every HTTP
request it opens an :class:`~contextlib.AsyncExitStack` that outlives the
whole response (streaming included) and is closed even when the request is
cancelled before its body was sent, so an upstream stream opened by a
handler can never leak.  It also

* takes the client's ``x-request-id`` (when sane: 1-128 printable ASCII
  characters) or makes one, and returns it on every response;
* times the response (total and time to first body byte) and, for API
  paths, hands the finished request to :class:`~minillm.server.accounting.Accounting`
  (metrics, usage record, token charge);
* writes the one access-log line (request id and key *name*, never the key).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import AsyncExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)

from minillm.attempt import JSONReply, StreamReply
from minillm.auth import GatewayKey
from minillm.errors import GatewayError
from minillm.translate.streams import StreamTranslator

if TYPE_CHECKING:
    from minillm.server.accounting import Accounting

__all__ = [
    "RequestScope",
    "RequestState",
    "current_request",
    "current_request_id",
]

access_log = logging.getLogger("minillm.access")

MAX_REQUEST_ID = 128
_API_PREFIXES = ("/v1/", "/openai/v1/", "/anthropic/v1/")
_ENDPOINTS = {
    "/v1/chat/completions": "chat_completions",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/embeddings": "embeddings",
    "/v1/models": "models",
}


@dataclass(slots=True)
class RequestState:
    """What handlers record about their request, for the log, metrics and usage."""

    resources: AsyncExitStack = field(default_factory=AsyncExitStack)
    request_id: str = ""
    status: int = 0
    model: str = "-"
    target: str = "-"
    provider: str | None = None
    model_served: str | None = None
    key: GatewayKey | None = None
    rejection: str | None = None
    dropped_tools: tuple[str, ...] = ()  # built-in tools a translation left out
    stream: StreamTranslator | None = None  # its token counts, once relayed
    reply_body: bytes | None = None  # a JSON reply: usage parsed only if needed
    started: float = 0.0  # perf_counter
    first_byte: float | None = None

    def note_reply(self, reply: JSONReply | StreamReply) -> None:
        """Where the gateway sent the request, and where its token counts will be."""
        self.target = str(reply.target)
        self.provider, self.model_served = reply.target.provider, reply.target.model
        self.dropped_tools = reply.dropped_tools
        if isinstance(reply, JSONReply):
            self.reply_body = reply.body
        else:
            self.stream = reply.translator

    def note_stream_error(self, exc: GatewayError) -> None:
        """The stream (sent as 200) ended with ``exc`` as its error event: it failed."""
        self.status = exc.status


_current: ContextVar[RequestState] = ContextVar("minillm_request")


def current_request() -> RequestState:
    """The state of the request being handled by this task."""
    return _current.get()


def current_request_id() -> str | None:
    """The id of the request being handled by this task, if any (for log lines)."""
    state = _current.get(None)
    return state.request_id if state is not None else None


def endpoint_of(path: str) -> str | None:
    """The metrics ``endpoint`` label of an API path; ``None`` for non-API paths."""
    if not path.startswith(_API_PREFIXES):
        return None
    if not path.startswith("/v1/"):
        path = path[path.index("/v1/") :]
    return _ENDPOINTS.get(path, "other")


def request_id_from(scope: HTTPScope) -> str:
    """The client's ``x-request-id`` when sane, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if 0 < len(value) <= MAX_REQUEST_ID and value.isascii():
                text = value.decode("ascii")
                if text.isprintable() and text.strip() == text:
                    return text
            break
    return "req_" + os.urandom(12).hex()


class RequestScope:
    """ASGI middleware: request-scoped resources, request id, timing, access log."""

    def __init__(self, app: ASGIFramework, accounting: Accounting | None = None) -> None:
        self.app = app
        self.accounting = accounting

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_from(scope)
        state = RequestState(request_id=rid, started=time.perf_counter())
        _current.set(state)
        wall = time.time()
        endpoint = endpoint_of(scope["path"])
        accounting = self.accounting if endpoint is not None else None
        if accounting is not None:
            accounting.metrics.in_flight.inc()
        rid_header = (b"x-request-id", rid.encode())

        async def recording_send(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                state.status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), rid_header]}
            elif state.first_byte is None and message.get("body"):
                state.first_byte = time.perf_counter()
            if message["type"] == "http.response.body" and not message.get("more_body"):
                # Hypercorn starts the keep-alive idle timer inside this send; if Quart
                # has already cancelled the request (it does on http.disconnect), the
                # timer is born cancelled and idle connections are never closed, not
                # even at shutdown.  Hypercorn shields the socket write itself anyway.
                with trio.CancelScope(shield=True):
                    await send(message)  # type: ignore[arg-type]
                return
            await send(message)  # type: ignore[arg-type]

        try:
            async with state.resources:
                await self.app(scope, receive, recording_send)  # type: ignore[arg-type]
        finally:
            elapsed = time.perf_counter() - state.started
            if accounting is not None:
                accounting.metrics.in_flight.dec()
                await accounting.finish(state, endpoint or "other", scope["path"], wall, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                _access_line(scope["method"], scope["path"], state, elapsed)


def _access_line(method: str, path: str, state: RequestState, elapsed: float) -> None:
    key = state.key.name if state.key is not None else "-"
    fields: dict[str, object] = {
        "method": method,
        "path": path,
        "status": state.status or None,
        "model": state.model,
        "target": state.target,
        "key": key,
        "duration_ms": round(elapsed * 1000, 1),
        "request_id": state.request_id,
    }
    dropped = ""
    if state.dropped_tools:
        fields["dropped_tools"] = list(state.dropped_tools)
        dropped = " dropped_tools=" + ",".join(state.dropped_tools)
    access_log.info(
        "%s %s %s model=%s target=%s key=%s rid=%s %.1fms%s",
        method,
        _one_line(path),
        state.status or "-",
        _one_line(state.model),
        state.target,
        key,
        state.request_id,
        elapsed * 1000,
        dropped,
        extra=fields,
    )


def _one_line(text: str) -> str:
    """``text`` from the client with its control characters escaped (``\\n``): a
    text log line it cannot split or colour."""
    return text if text.isprintable() else repr(text)[1:-1]
