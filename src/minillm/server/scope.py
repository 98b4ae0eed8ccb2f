"""The middleware around the Quart app: resources, request id, timing, records, access log.

:class:`RequestScope` is ASGI middleware.  For every HTTP request it opens
:class:`~minillm.server.request.RequestNotes` (passed down in the ASGI scope)
whose :class:`~contextlib.AsyncExitStack` outlives the whole response (streaming
included) and is closed even when the request is cancelled before its body was
sent, so an upstream stream opened by a handler can never leak.  It also

* takes the client's ``x-request-id`` (when sane: 1-128 printable ASCII
  characters) or makes one, and returns it on every response;
* times the response (total and time to first body byte) and, for API
  paths, hands the finished request, frozen into a
  :class:`~minillm.server.request.RequestRecord`, to
  :class:`~minillm.server.records.Records` (metrics, usage row, token charge);
* writes the one access-log line (request id and key *name*, never the key).
"""

from __future__ import annotations

import logging
import os
import time

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)

from minillm.core.dialects import endpoint_of
from minillm.server.records import Records
from minillm.server.request import RequestNotes, RequestRecord, request_id_scope

__all__ = ["RequestScope"]

access_log = logging.getLogger("minillm.access")

MAX_REQUEST_ID = 128


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
    """ASGI middleware: request-scoped resources, request id, timing, records, access log."""

    def __init__(self, app: ASGIFramework, records: Records | None = None) -> None:
        self.app = app
        self.records = records

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_from(scope)
        notes = RequestNotes(request_id=rid, started=time.perf_counter())
        wall = time.time()
        records = self.records if endpoint_of(scope["path"]) is not None else None
        if records is not None:
            records.metrics.in_flight.inc()
        rid_header = (b"x-request-id", rid.encode())

        async def recording_send(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                notes.status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), rid_header]}
            elif notes.first_byte is None and message.get("body"):
                notes.first_byte = time.perf_counter()
            if message["type"] == "http.response.body" and not message.get("more_body"):
                # Hypercorn starts the keep-alive idle timer inside this send; if Quart
                # has already cancelled the request (it does on http.disconnect), the
                # timer is born cancelled and idle connections are never closed, not
                # even at shutdown.  Hypercorn shields the socket write itself anyway.
                with trio.CancelScope(shield=True):
                    await send(message)  # type: ignore[arg-type]
                return
            await send(message)  # type: ignore[arg-type]

        with request_id_scope(scope, notes):  # type: ignore[arg-type]
            try:
                async with notes.resources:
                    await self.app(scope, receive, recording_send)  # type: ignore[arg-type]
            finally:
                elapsed = time.perf_counter() - notes.started
                record = notes.record(scope["method"], scope["path"], wall, elapsed)
                if records is not None:
                    records.metrics.in_flight.dec()
                    await records.record(record)
                if access_log.isEnabledFor(logging.INFO):
                    access_line(record)


def access_line(rec: RequestRecord) -> None:
    """The access-log line of a finished request."""
    key = rec.served.key.name if rec.served.key is not None else "-"
    fields: dict[str, object] = {
        "method": rec.method,
        "path": rec.path,
        "status": rec.status or None,
        "model": rec.served.model,
        "target": rec.served.target,
        "key": key,
        "duration_ms": round(rec.elapsed * 1000, 1),
        "request_id": rec.request_id,
    }
    dropped = ""
    if rec.served.dropped_tools:
        fields["dropped_tools"] = list(rec.served.dropped_tools)
        dropped = " dropped_tools=" + ",".join(rec.served.dropped_tools)
    access_log.info(
        "%s %s %s model=%s target=%s key=%s rid=%s %.1fms%s",
        rec.method,
        _one_line(rec.path),
        rec.status or "-",
        _one_line(rec.served.model),
        rec.served.target,
        key,
        rec.request_id,
        rec.elapsed * 1000,
        dropped,
        extra=fields,
    )


def _one_line(text: str) -> str:
    """``text`` from the client with its control characters escaped (``\\n``): a
    text log line it cannot split or colour."""
    return text if text.isprintable() else repr(text)[1:-1]
