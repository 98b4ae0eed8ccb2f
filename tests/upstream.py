"""A real fake upstream: OpenAI + Anthropic over HTTP (Hypercorn), scripted per request.

Each incoming request is recorded in ``FakeUpstream.requests`` first, then answered by the
next queued behaviour (``push``), or ``Reply()`` when the queue is empty.  Routes:
``POST /v1/chat/completions``, ``POST /v1/responses`` (see ``upstream_responses``),
``GET /v1/models``, ``POST /v1/embeddings`` (OpenAI) and ``POST /v1/messages`` (Anthropic).
Anything else is a 404 and consumes no behaviour.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import re
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import hypercorn.config
import hypercorn.trio
import orjson
import trio

from upstream_responses import last_input_text, responses_body, responses_stream

__all__ = [
    "Behaviour",
    "DropAfter",
    "FakeUpstream",
    "Hang",
    "Raw",
    "RecordedRequest",
    "Reply",
    "SlowStream",
    "StallAfter",
    "Status",
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Api = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    at: float


@dataclass(frozen=True, slots=True)
class Reply:
    text: str | None = None  # None: "echo: <last user text>"
    tool_call: tuple[str, dict[str, Any]] | None = None
    usage: tuple[int, int] = (10, 5)
    delay: float = 0.0  # before the response headers
    chunk_delay: float = 0.0  # between stream events


@dataclass(frozen=True, slots=True)
class Status:
    status: int
    body: bytes | dict[str, Any] | None = None  # None: a realistic error body for the route
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hang:
    """Never send response headers; wait for the client to go away."""


@dataclass(frozen=True, slots=True)
class Silent:
    """Send 200 and SSE headers, then nothing, until the client goes away."""


@dataclass(frozen=True, slots=True)
class SlowStream:
    chunks: int = 1000
    interval: float = 0.05


@dataclass(frozen=True, slots=True)
class StallAfter:
    chunks: int


@dataclass(frozen=True, slots=True)
class DropAfter:
    chunks: int


@dataclass(frozen=True, slots=True)
class Raw:
    status: int
    body: bytes
    content_type: str = "application/json"


Behaviour = Reply | Status | Hang | Silent | SlowStream | StallAfter | DropAfter | Raw


class _Dropped(Exception):
    """Raised mid-body so Hypercorn aborts the connection (no chunked terminator)."""


_LOG = logging.getLogger("tests.upstream")  # Hypercorn's error log; real errors stay visible
_LOG.addFilter(lambda r: not (r.exc_info and isinstance(r.exc_info[1], _Dropped)))


@dataclass(frozen=True, slots=True)
class _Answer:
    id: str
    model: str
    pieces: list[str]  # text deltas, or tool-call argument JSON fragments
    tool: str | None  # tool name when `pieces` are arguments
    usage: tuple[int, int]


@dataclass(frozen=True, slots=True)
class _Call:
    route: str  # a value of _ROUTES
    api: Api
    req: dict[str, Any]  # the request JSON ({} when absent or not an object)
    receive: Receive
    send: Send


_Plan = tuple[list[bytes], list[bytes], list[bytes], str]  # SSE head, deltas, tail; type
_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/v1/chat/completions"): "chat",
    ("POST", "/v1/responses"): "responses",
    ("POST", "/v1/messages"): "messages",
    ("POST", "/v1/messages/count_tokens"): "count_tokens",
    ("GET", "/v1/models"): "models",
    ("POST", "/v1/embeddings"): "embeddings",
}
_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_MODELS = [
    {"id": m, "object": "model", "created": 1700000000, "owned_by": "openai"}
    for m in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
]
_SSE = "text/event-stream; charset=utf-8"


# -- bodies ------------------------------------------------------------------------------


def error_body(api: Api, status: int) -> dict[str, Any]:
    """A realistic error body for ``status`` in the API's format."""
    message = f"fake upstream error {status}"
    if api == "anthropic":
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind, code = _OPENAI_ERRORS.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _last_user_text(req: Any) -> str:
    if isinstance(req, dict) and "input" in req:
        return last_input_text(req)
    messages = req.get("messages") if isinstance(req, dict) else None
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
                )
    return ""


def _split(data: str | bytes, n: int) -> list[Any]:
    """``data`` cut into ``n`` (or fewer, never empty) consecutive pieces."""
    size = max(1, -(-len(data) // max(n, 1)))
    return [data[i : i + size] for i in range(0, len(data), size)]


def _openai(a: _Answer, obj: str, **fields: Any) -> dict[str, Any]:
    head = {"id": f"chatcmpl-{a.id}", "object": obj, "created": int(time.time())}
    return head | {"model": a.model, "system_fingerprint": None} | fields


def _openai_chunk(a: _Answer, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return b"data: " + orjson.dumps(_openai(a, "chat.completion.chunk", choices=[choice])) + b"\n\n"


def _openai_usage(a: _Answer) -> dict[str, int]:
    return {
        "prompt_tokens": a.usage[0],
        "completion_tokens": a.usage[1],
        "total_tokens": sum(a.usage),
    }


def openai_body(a: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(a.pieces), "refusal": None}
    if a.tool is not None:
        fn = {"name": a.tool, "arguments": message["content"]}
        call = {"id": f"call_{a.id}", "type": "function", "function": fn}
        message |= {"content": None, "tool_calls": [call]}
    finish = "stop" if a.tool is None else "tool_calls"
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return _openai(a, "chat.completion", choices=[choice], usage=_openai_usage(a))


def openai_stream(a: _Answer, include_usage: bool) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(head, deltas, tail) SSE events of a chat.completion.chunk stream."""
    if a.tool is None:
        head = [_openai_chunk(a, {"role": "assistant", "content": "", "refusal": None})]
        deltas = [_openai_chunk(a, {"content": p}) for p in a.pieces]
    else:
        fn = {"name": a.tool, "arguments": ""}
        call = {"index": 0, "id": f"call_{a.id}", "type": "function", "function": fn}
        head = [_openai_chunk(a, {"role": "assistant", "content": None, "tool_calls": [call]})]
        fragments = [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in a.pieces]
        deltas = [_openai_chunk(a, f) for f in fragments]
    tail = [_openai_chunk(a, {}, "stop" if a.tool is None else "tool_calls")]
    if include_usage:
        usage = _openai(a, "chat.completion.chunk", choices=[], usage=_openai_usage(a))
        tail.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    return head, deltas, [*tail, b"data: [DONE]\n\n"]


def _anthropic_block(a: _Answer) -> dict[str, Any]:
    if a.tool is None:
        return {"type": "text", "text": "".join(a.pieces)}
    args = orjson.loads("".join(a.pieces))
    return {"type": "tool_use", "id": f"toolu_{a.id}", "name": a.tool, "input": args}


def anthropic_body(a: _Answer) -> dict[str, Any]:
    return {
        "id": f"msg_{a.id}",
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": [_anthropic_block(a)],
        "stop_reason": "end_turn" if a.tool is None else "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": a.usage[0], "output_tokens": a.usage[1]},
    }


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


def anthropic_stream(a: _Answer) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(head, deltas, tail) SSE events of a Messages stream."""
    usage = {"input_tokens": a.usage[0], "output_tokens": 1}
    message = anthropic_body(a) | {"content": [], "stop_reason": None, "usage": usage}
    empty: dict[str, Any] = {"text": ""} if a.tool is None else {"input": {}}
    block = _anthropic_block(a) | empty
    head = [
        _event("message_start", {"message": message}),
        _event("content_block_start", {"index": 0, "content_block": block}),
        _event("ping", {}),
    ]
    kind, key = ("text_delta", "text") if a.tool is None else ("input_json_delta", "partial_json")
    deltas = [
        _event("content_block_delta", {"index": 0, "delta": {"type": kind, key: p}})
        for p in a.pieces
    ]
    stop = {"stop_reason": "end_turn" if a.tool is None else "tool_use", "stop_sequence": None}
    tail = [
        _event("content_block_stop", {"index": 0}),
        _event("message_delta", {"delta": stop, "usage": {"output_tokens": a.usage[1]}}),
        _event("message_stop", {}),
    ]
    return head, deltas, tail


def _embeddings(req: dict[str, Any]) -> dict[str, Any]:
    inputs = req.get("input", "")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    dims = int(req.get("dimensions") or 8)
    data = []
    for i, text in enumerate(inputs):
        digest = hashlib.sha256(str(text).encode()).digest() * (dims // 32 + 1)
        vec = [round(b / 127.5 - 1, 6) for b in digest[:dims]]
        emb: Any = vec
        if req.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = sum(len(str(t).split()) for t in inputs)
    return {
        "object": "list",
        "data": data,
        "model": req.get("model", "text-embedding-3-small"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# -- server ------------------------------------------------------------------------------


class FakeUpstream:
    """ASGI app + recorder.  Start with ``await nursery.start(upstream.serve)``."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[float] = []
        self._queue: deque[Behaviour] = deque()
        self._ids = itertools.count(1)
        self._disconnected = trio.Event()

    def push(self, *behaviours: Behaviour) -> None:
        self._queue.extend(behaviours)

    async def wait_disconnect(self, timeout: float = 1.0, count: int = 1) -> float:
        """Wait until ``count`` disconnects were seen; return the time of that one."""
        with trio.fail_after(timeout):
            while len(self.disconnects) < count:
                await self._disconnected.wait()
        return self.disconnects[count - 1]

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        config = hypercorn.config.Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = _LOG
        config.graceful_timeout = 0.1
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(hypercorn.trio.serve, self, config))  # type: ignore[arg-type]
            self.url = binds[0]
            task_status.started(self.url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        body = await _read_body(receive)
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            name, value = k.decode("latin-1").lower(), v.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        now = trio.current_time()
        self.requests.append(
            RecordedRequest(scope["method"], scope["path"], headers, body, parsed, now)
        )
        route = _ROUTES.get((scope["method"], scope["path"]))
        api: Api = "anthropic" if scope["path"].startswith("/v1/messages") else "openai"
        if route is None:
            return await _respond(send, 404, orjson.dumps(error_body(api, 404)))
        call = _Call(route, api, parsed if isinstance(parsed, dict) else {}, receive, send)
        await self._apply(self._queue.popleft() if self._queue else Reply(), call)

    async def _apply(self, b: Behaviour, call: _Call) -> None:
        match b:
            case Raw():
                await _respond(call.send, b.status, b.body, b.content_type)
            case Status():
                body = b.body if b.body is not None else error_body(call.api, b.status)
                raw = body if isinstance(body, bytes) else orjson.dumps(body)
                await _respond(call.send, b.status, raw, headers=b.headers)
            case Hang():
                await self._until_disconnect(call.receive)
            case Silent():
                await self._stream(call, _SSE, [], 0, "stall")
            case Reply():
                await trio.sleep(b.delay)
                head, deltas, tail, ctype = self._plan(call, b)
                await self._stream(call, ctype, [*head, *deltas, *tail], b.chunk_delay)
            case SlowStream():
                head, deltas, tail, ctype = self._plan(call, _words(b.chunks), b.chunks)
                pieces = [b"".join(head), *deltas, b"".join(tail)]
                await self._stream(call, ctype, pieces, b.interval)
            case StallAfter() | DropAfter():
                head, deltas, _, ctype = self._plan(call, _words(b.chunks + 1), b.chunks + 1)
                pieces = [b"".join(head), *deltas[: b.chunks]]
                await self._stream(
                    call, ctype, pieces, 0, "stall" if isinstance(b, StallAfter) else "drop"
                )

    def _plan(self, call: _Call, reply: Reply, parts: int = 1) -> _Plan:
        """SSE events (head, deltas, tail) and content type; a JSON body is cut in ``parts``."""
        req = call.req
        if call.route == "responses":
            answer = self._answer(req, reply)
            if req.get("stream") is True:
                return (*responses_stream(answer, req), _SSE)
            body = responses_body(answer, req)
        elif call.route in {"chat", "messages"}:
            answer = self._answer(req, reply)
            if req.get("stream") is True and call.api == "anthropic":
                return (*anthropic_stream(answer), _SSE)
            if req.get("stream") is True:
                opts = req.get("stream_options")
                usage = isinstance(opts, dict) and opts.get("include_usage") is True
                return (*openai_stream(answer, usage), _SSE)
            body = anthropic_body(answer) if call.api == "anthropic" else openai_body(answer)
        elif call.route == "models":
            body = {"object": "list", "data": _MODELS}
        elif call.route == "count_tokens":
            body = {"input_tokens": len(orjson.dumps(req.get("messages"))) // 4}
        else:
            body = _embeddings(req)
        return [], _split(orjson.dumps(body), parts), [], "application/json"

    def _answer(self, req: dict[str, Any], reply: Reply) -> _Answer:
        ident, model = f"fake{next(self._ids)}", str(req.get("model", "unknown"))
        if reply.tool_call is not None:
            name, args = reply.tool_call
            return _Answer(ident, model, _split(orjson.dumps(args).decode(), 4), name, reply.usage)
        text = reply.text if reply.text is not None else f"echo: {_last_user_text(req)}"
        pieces = [p for p in re.split(r"(?<=\s)(?=\S)", text) if p]
        return _Answer(ident, model, pieces, None, reply.usage)

    async def _stream(
        self,
        call: _Call,
        content_type: str,
        pieces: list[bytes],
        gap: float,
        end: Literal["end", "stall", "drop"] = "end",
    ) -> None:
        """Send 200 then ``pieces``, ``gap`` s apart; stop early if the client goes away."""
        sending = True

        async def watch() -> None:
            await self._until_disconnect(call.receive, lambda: sending)
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await call.send(_start(200, content_type))
            for i, piece in enumerate(pieces):
                await trio.sleep(gap if i else 0)
                await call.send({"type": "http.response.body", "body": piece, "more_body": True})
            if end == "stall":
                await trio.sleep_forever()
            sending = False
            if end == "end":
                await call.send({"type": "http.response.body", "body": b"", "more_body": False})
            nursery.cancel_scope.cancel()
        if end == "drop" and not sending:
            raise _Dropped

    async def _until_disconnect(
        self, receive: Receive, record: Callable[[], bool] = lambda: True
    ) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if record():
            self.disconnects.append(trio.current_time())
            self._disconnected.set()
            self._disconnected = trio.Event()


def _words(n: int) -> Reply:
    return Reply(text="".join(f"w{i} " for i in range(n)))


def _start(
    status: int, content_type: str, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    fields = {"content-type": content_type, "x-request-id": "req_fake", "request-id": "req_fake"}
    fields |= {k.lower(): v for k, v in (headers or {}).items()}
    raw = [(k.encode(), v.encode()) for k, v in fields.items()]
    return {"type": "http.response.start", "status": status, "headers": raw}


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> None:
    await send(_start(status, content_type, headers))
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        more = msg["type"] == "http.request" and msg.get("more_body", False)
    return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})
