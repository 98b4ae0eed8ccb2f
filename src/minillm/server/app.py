"""The Quart-Trio app factory: routes parse, call the gateway, render.

This module is the error boundary: :class:`~minillm.core.errors.GatewayError` and
every unexpected exception become an error body in the format of the API the
client called, with no upstream detail and no traceback (those are logged).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import orjson
import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from minillm.core.config import Config
from minillm.core.dialects import DIALECTS, ClientAPI, dialect_of
from minillm.core.errors import (
    BadRequest,
    ClientTimeout,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
)
from minillm.core.exchange import Operation
from minillm.core.provider_state import LocalHealth
from minillm.runtime.gateway import TARGET_HEADER, Call, Gateway, JSONReply
from minillm.runtime.providers.http import open_providers
from minillm.runtime.shared import SharedStores, open_shared_stores
from minillm.server.admission import Admission
from minillm.server.metrics import CONTENT_TYPE, rejection_reason
from minillm.server.records import Records
from minillm.server.relay import RelayBody, StreamRegistry
from minillm.server.request import notes_of
from minillm.server.scope import RequestScope

__all__ = ["create_app", "streams_of"]

log = logging.getLogger("minillm.server")

PREFIXES = ("", "/openai", "/anthropic")
DROPPED_TOOLS_HEADER = "x-minillm-dropped-tools"
_FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")
_JSON = "application/json"
_BODY_UNREAD = frozenset({PayloadTooLarge.status, ClientTimeout.status})


def json_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(body, status=status, content_type=_JSON, headers=headers)


async def read_json(config: Config) -> dict[str, Any]:
    """The request body as a JSON object, within the size and time limits."""
    declared = request.content_length
    if declared is not None and declared > config.max_body_bytes:
        raise PayloadTooLarge()
    with trio.move_on_after(config.body_timeout) as deadline:
        try:
            raw = await request.body
        except RequestEntityTooLarge:
            raise PayloadTooLarge() from None
    if deadline.cancelled_caught:
        raise ClientTimeout()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


_STREAMS = "minillm.streams"


def streams_of(app: QuartTrio) -> StreamRegistry:
    """The streams ``app`` is relaying (for a shutdown that ends them cleanly)."""
    registry: StreamRegistry = app.extensions[_STREAMS]
    return registry


class _Serving:
    """The app's gateway, which exists between Quart's serving start and end."""

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        self.done = trio.Event()

    def current(self) -> Gateway:
        if self.gateway is None:
            raise Overloaded("The gateway is starting or stopping")
        return self.gateway


def create_app(config: Config | None = None) -> QuartTrio:
    """Build the app; providers are opened when serving starts."""
    config = config or Config.load()
    app = QuartTrio("minillm")
    app.config.update(
        RESPONSE_TIMEOUT=None,  # Quart's 60 s default would cut long streams silently
        BODY_TIMEOUT=config.body_timeout,
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    lifetime = AsyncExitStack()
    serving = _Serving()
    streams = app.extensions[_STREAMS] = StreamRegistry()
    admission = Admission(config)
    records = Records(config, admission)

    @app.before_serving
    async def open_gateway() -> None:
        providers = await lifetime.enter_async_context(open_providers(config))
        shared = await app.nursery.start(_hold_shared_stores, config, records, serving.done)
        serving.gateway = Gateway(
            config,
            providers,
            on_attempt=records.metrics.attempt,
            health=LocalHealth if shared is None else shared.health,
        )
        await records.start(app.nursery)
        if config.offline:
            log.warning("no provider keys configured: every model is served by the offline mock")

    @app.after_serving
    async def close_gateway() -> None:
        serving.gateway = None
        serving.done.set()
        await lifetime.aclose()
        await records.aclose()  # flush queued usage records

    def endpoint(fmt: ClientAPI, operation: Operation) -> Callable[[], Awaitable[Response]]:
        async def view() -> Response:
            notes = notes_of(request.scope)
            with streams.waiting():  # a shutdown answers 503 rather than cutting the request
                body = await read_json(config)
                notes.note_model(body.get("model"))
                await admission.check_model(notes.served.key, body.get("model"))
                headers = {"x-request-id": notes.request_id} | {
                    k: v for k in _FORWARDED_HEADERS if (v := request.headers.get(k))
                }
                reply = await serving.current().handle(
                    Call(fmt, operation, body, headers), notes.resources
                )
            notes.note_reply(reply)
            extra = {TARGET_HEADER: str(reply.target)}
            if reply.dropped_tools:
                extra[DROPPED_TOOLS_HEADER] = ",".join(reply.dropped_tools)
            if isinstance(reply, JSONReply):
                return json_response(reply.body, headers=extra)
            relay = RelayBody(
                reply,
                DIALECTS[fmt],
                idle_timeout=config.idle_timeout,
                streams=streams,
                on_error=notes.note_stream_error,
            )
            extra.update({"cache-control": "no-cache", "x-accel-buffering": "no"})
            return Response(relay, status=200, content_type="text/event-stream", headers=extra)

        view.__name__ = f"{fmt}_{operation}"
        return view

    routes = {
        route.path: endpoint(dialect.name, route.operation)
        for dialect in DIALECTS.values()
        for route in dialect.routes
    }

    async def list_models() -> Response:
        entries = [
            (name, [str(t) for t in config.aliases[name]]) for name in sorted(config.aliases)
        ]
        if config.discover_models:
            discovered = await serving.current().discovery.models()
            entries += [(f"{p}:{m}", [f"{p}:{m}"]) for p, m in discovered]
        return json_response(models_body(entries, anthropic="anthropic-version" in request.headers))

    for prefix in PREFIXES:
        for path, view in routes.items():
            app.add_url_rule(prefix + path, f"{prefix}{path}", view, methods=["POST"])
        app.add_url_rule(prefix + "/v1/models", f"{prefix}/v1/models", list_models, methods=["GET"])

    _install_admission(app, admission, records)  # /metrics; the key check, with keys
    _install_health(app, serving)
    _install_error_handlers(app)
    app.asgi_app = RequestScope(app.asgi_app, records)  # type: ignore[method-assign]
    return app


async def _hold_shared_stores(
    config: Config,
    records: Records,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[SharedStores | None],
) -> None:
    """Open the shared stores (their client runs tasks), count limits and budgets in them,
    and keep them until ``done``."""
    errors = records.metrics.shared_state_errors.inc
    async with open_shared_stores(config, errors) as shared:
        records.admission.share(shared)  # limits and budgets counted in the shared store
        task_status.started(shared)
        await done.wait()


def _install_health(app: QuartTrio, serving: _Serving) -> None:
    """``GET /health`` (the process is up) and ``GET /health/providers``."""

    @app.get("/health")
    async def health() -> Response:
        return json_response(b'{"status":"ok"}')

    @app.get("/health/providers")
    async def provider_health() -> Response:
        return json_response(orjson.dumps({"providers": await serving.current().provider_health()}))


def _install_admission(app: QuartTrio, admission: Admission, records: Records) -> None:
    """``GET /metrics`` and, when gateway keys are configured, the key check of every request."""

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(records.metrics.render(), content_type=CONTENT_TYPE)

    if admission.enabled:

        @app.before_request
        async def check_key() -> None:
            notes = notes_of(request.scope)
            key = admission.authenticate(request.path, request.headers, request.remote_addr)
            notes.note_key(key)
            if key is not None:
                await admission.limit(key)


def _install_error_handlers(app: QuartTrio) -> None:
    """The error boundary: every failure becomes an error body of the called API."""

    @app.errorhandler(GatewayError)
    async def on_gateway_error(exc: GatewayError) -> Response:
        return error_response(exc)

    @app.errorhandler(HTTPException)
    async def on_http_exception(exc: HTTPException) -> Response:
        error: GatewayError
        if exc.code == 404:
            error = NotFound(f"No route for {request.method} {request.path}")
        elif exc.code == 405:
            error = MethodNotAllowed(f"Method {request.method} not allowed")
        elif exc.code == 413:
            error = PayloadTooLarge()
        elif exc.code == 400:
            error = BadRequest()
        else:
            log.warning("HTTP %s from the framework on %s", exc.code, request.path)
            error = GatewayError()
        return error_response(error)

    @app.errorhandler(Exception)
    async def on_unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(GatewayError())


def error_response(exc: GatewayError) -> Response:
    notes = notes_of(request.scope)
    notes.note_error(rejection_reason(exc), exc.headers.get(TARGET_HEADER))
    body = dialect_of(request.path).render_error(exc, notes.request_id or None)
    headers = dict(exc.headers)
    if exc.status in _BODY_UNREAD and request.http_version.startswith("1"):
        headers["connection"] = "close"  # the server closes it: the client must not reuse it
    return json_response(body, exc.status, headers)


def models_body(entries: Sequence[tuple[str, list[str]]], *, anthropic: bool) -> bytes:
    """Model ids and their targets as an OpenAI (or, for Anthropic SDKs, Anthropic) list."""
    names = [name for name, _ in entries]
    if anthropic:
        data: list[dict[str, Any]] = [
            {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
            for n in names
        ]
        first, last = (names[0], names[-1]) if names else (None, None)
        return orjson.dumps({"data": data, "has_more": False, "first_id": first, "last_id": last})
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "minillm", "targets": targets}
        for name, targets in entries
    ]
    return orjson.dumps({"object": "list", "data": data})
