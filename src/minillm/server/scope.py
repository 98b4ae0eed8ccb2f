"""Per-request state: the resources to close and the access-log fields.

:class:`RequestScope` is ASGI middleware around the Quart app.  For every HTTP
request it opens an :class:`~contextlib.AsyncExitStack` that outlives the
whole response (streaming included) and is closed even when the request is
cancelled before its body was sent, so an upstream stream opened by a
handler can never leak.  It also writes the one access-log line.
"""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field

from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

__all__ = ["RequestScope", "RequestState", "current_request"]

access_log = logging.getLogger("minillm.access")


@dataclass(slots=True)
class RequestState:
    """What a handler records about its request for the access log."""

    resources: AsyncExitStack = field(default_factory=AsyncExitStack)
    status: int = 0
    model: str = "-"
    target: str = "-"


_current: ContextVar[RequestState] = ContextVar("minillm_request")


def current_request() -> RequestState:
    """The state of the request being handled by this task."""
    return _current.get()


class RequestScope:
    """ASGI middleware: request-scoped resources and the access-log line."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = RequestState()
        _current.set(state)
        started = time.perf_counter()

        async def recording_send(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                state.status = message["status"]
            await send(message)  # type: ignore[arg-type]

        try:
            async with state.resources:
                await self.app(scope, receive, recording_send)  # type: ignore[arg-type]
        finally:
            access_log.info(
                "%s %s %s model=%s target=%s %.1fms",
                scope["method"],
                scope["path"],
                state.status or "-",
                state.model,
                state.target,
                (time.perf_counter() - started) * 1000,
            )
