"""The built-in offline providers ``mock`` and ``mock-anthropic``: fake APIs, in-process.

They need no API key and no network.  They are one httpx transport, so the
gateway reaches them through the same code as any real provider
(``httpx.AsyncClient(transport=MockTransport(), base_url="http://mock.invalid/v1")``):
``mock`` is an OpenAI-format provider, ``mock-anthropic`` an Anthropic-format
one, and a client of the other API reaches either through the real
translation layer, as it would in production.

The transport answers ``POST …/chat/completions``, ``POST …/embeddings``,
``POST …/messages``, ``POST …/messages/count_tokens`` and ``GET …/models``
under any base URL; other paths get a 404 and malformed requests a 400, with
error bodies in the API's shape.  Everything is deterministic:

* **Replies** echo the last user message, ``"You said: <text>"`` (text parts
  joined with spaces; a greeting if there is no user text).  Any model name is
  accepted and echoed.  Only one choice is returned (``n`` is ignored).
* **Usage** is estimated as ``round(words * 4 / 3)`` tokens (at least 1), over
  all message text for the prompt and over the reply for the completion.
* **Tool results end the loop**: when tool results (OpenAI ``role: "tool"``
  messages, Anthropic ``tool_result`` blocks) follow the last assistant turn,
  the reply is text, ``"Tool <name> returned: <output>"`` (joined with ``; ``
  for several), whatever the tool choice, so an agent's loop finishes.
* **Tools**: otherwise, with tools offered and the choice not ``none``, the
  mock calls a tool when the choice is ``required``/``any`` or names one, or
  when the last user message mentions a tool by name or says "tool".  It calls
  the named tool, else the mentioned one, else the first, with arguments built
  from its JSON schema (required properties, or all if none is required:
  strings get the user text, numbers 1, booleans true, enums their first
  value), finishing with ``tool_calls`` / ``tool_use``.
* **max_tokens** / **max_completion_tokens** cut a text reply to that many
  words, with ``finish_reason: "length"`` / ``stop_reason: "max_tokens"``
  (tool-call arguments are not cut).  The Messages API requires ``max_tokens``.
* **Streaming** sends ``chat.completion.chunk`` events (the role; the text word
  by word, at most 64 deltas, or the tool call: id and name, then the
  arguments in several fragments; a chunk with the ``finish_reason``; a usage
  chunk if ``stream_options.include_usage``; ``data: [DONE]``) or the Messages
  events (see :mod:`minillm.runtime.providers.mock_anthropic`).  Chunks are
  ``chunk_delay`` seconds apart (default 0.02); closing the response stops the
  stream at once.  Streaming requires Trio.
* **Embeddings** are unit vectors of ``dimensions`` (default 8) floats hashed
  from each input, as ``float`` lists or ``base64`` (``encoding_format``).
* **Models** lists ``mock-1``, ``mock-echo`` and ``mock-embed``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import struct
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import trio

from minillm.core.errors import BadRequest, GatewayError, NotFound, WireFormat, render_error
from minillm.runtime.providers.mock_anthropic import message_body, message_frames
from minillm.runtime.providers.mock_plan import (
    Json,
    Reply,
    arguments_pieces,
    as_list,
    as_object,
    from_anthropic,
    from_openai,
    plan,
    positive,
    text_pieces,
    tokens,
)

__all__ = ["MOCK_MODELS", "MockTransport"]

MOCK_MODELS = ("mock-1", "mock-echo", "mock-embed")

_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_MODEL_LIST = [
    {"id": m, "object": "model", "created": 0, "owned_by": "minillm"} for m in MOCK_MODELS
]
_MODELS_BODY = orjson.dumps({"object": "list", "data": _MODEL_LIST})
_DONE = b"data: [DONE]\n\n"


class MockTransport(httpx.AsyncBaseTransport):
    """An httpx transport answering the OpenAI and Anthropic APIs offline (see the module docs)."""

    def __init__(self, *, chunk_delay: float = 0.02) -> None:
        if chunk_delay < 0:
            raise ValueError("chunk_delay must be >= 0")
        self._chunk_delay = chunk_delay
        self._ids = itertools.count(1)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path.rstrip("/"), request.method
        fmt: WireFormat = "anthropic" if "/messages" in path else "openai"
        try:
            if method == "POST" and path.endswith("/chat/completions"):
                return self._chat(await _read_json(request))
            if method == "POST" and path.endswith("/messages"):
                return self._message(await _read_json(request))
            if method == "POST" and path.endswith("/messages/count_tokens"):
                counted = from_anthropic(await _read_json(request), counting=True)
                body = orjson.dumps({"input_tokens": tokens(" ".join(counted.texts))})
                return httpx.Response(200, headers=_JSON, content=body)
            if method == "POST" and path.endswith("/embeddings"):
                return _embeddings(await _read_json(request))
            if method == "GET" and path.endswith("/models"):
                return httpx.Response(200, headers=_JSON, content=_MODELS_BODY)
            raise NotFound(f"Invalid URL ({method} {path})")
        except GatewayError as exc:
            return httpx.Response(exc.status, headers=_JSON, content=render_error(fmt, exc))

    def _stream(self, frames: list[bytes]) -> httpx.Response:
        return httpx.Response(200, headers=_SSE, stream=_SSEStream(frames, self._chunk_delay))

    def _message(self, body: Json) -> httpx.Response:
        reply = plan(from_anthropic(body))
        model = body.get("model")
        name = model if isinstance(model, str) else MOCK_MODELS[0]
        message_id = f"msg_mock{next(self._ids)}"
        if body.get("stream") is True:
            return self._stream(message_frames(reply, message_id, name))
        content = message_body(reply, message_id, name)
        return httpx.Response(200, headers=_JSON, content=content)

    def _chat(self, body: Json) -> httpx.Response:
        reply = plan(from_openai(body))
        model = body.get("model")
        head: Json = {
            "id": f"chatcmpl-mock{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model if isinstance(model, str) else MOCK_MODELS[0],
            "system_fingerprint": "fp_mock",
        }
        if body.get("stream") is True:
            usage = as_object(body.get("stream_options")).get("include_usage") is True
            return self._stream(_chunks(head, reply, usage))
        message: Json = {"role": "assistant", "content": reply.text, "refusal": None}
        if reply.call is not None:
            digest, name, args = reply.call
            function = {"name": name, "arguments": args}
            message["tool_calls"] = [
                {"id": f"call_{digest}", "type": "function", "function": function}
            ]
        choice = {"index": 0, "message": message, "logprobs": None}
        head["choices"] = [{**choice, "finish_reason": reply.finish_reason}]
        head["usage"] = _usage(reply)
        return httpx.Response(200, headers=_JSON, content=orjson.dumps(head))


class _SSEStream(httpx.AsyncByteStream):
    """Pre-serialised SSE frames, released one per pull with a pause in between.

    Nothing runs in the background: a frame goes out only when the reader asks
    for one, and ``aclose()`` drops the rest, so closing ends the stream.
    """

    def __init__(self, frames: list[bytes], delay: float) -> None:
        self._frames = frames
        self._delay = delay
        self.sent = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.sent and self.sent < len(self._frames):
            await trio.sleep(self._delay)
        if self.sent >= len(self._frames):  # done, or closed while we slept
            raise StopAsyncIteration
        self.sent += 1
        return self._frames[self.sent - 1]

    async def aclose(self) -> None:
        self._frames = []


async def _read_json(request: httpx.Request) -> Json:
    try:
        body = orjson.loads(await request.aread())
    except orjson.JSONDecodeError:
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


def _usage(reply: Reply) -> dict[str, int]:
    prompt, completion = reply.prompt_tokens, reply.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _sse(event: Json) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


def _chunks(head: Json, reply: Reply, include_usage: bool) -> list[bytes]:
    """The whole SSE body of a streamed reply, one frame per chunk."""
    base: Json = {**head, "object": "chat.completion.chunk"}
    if include_usage:
        base["usage"] = None

    def frame(delta: Json, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**base, "choices": [choice]})

    frames = [frame({"role": "assistant", "content": None if reply.call else ""})]
    if reply.call is None:
        frames += [frame({"content": piece}) for piece in text_pieces(reply.text or "")]
    else:
        digest, name, args = reply.call
        function = {"name": name, "arguments": ""}
        start = {"index": 0, "id": f"call_{digest}", "type": "function", "function": function}
        frames.append(frame({"tool_calls": [start]}))
        parts = ({"index": 0, "function": {"arguments": piece}} for piece in arguments_pieces(args))
        frames += [frame({"tool_calls": [part]}) for part in parts]
    frames.append(frame({}, reply.finish_reason))
    if include_usage:
        frames.append(_sse({**base, "choices": [], "usage": _usage(reply)}))
    frames.append(_DONE)
    return frames


def _embeddings(body: Json) -> httpx.Response:
    inputs = body.get("input")
    if isinstance(inputs, str) or (inputs and all(type(i) is int for i in as_list(inputs))):
        inputs = [inputs]  # one string or one token array
    items = as_list(inputs)
    if not items or not all(isinstance(i, str) or as_list(i) for i in items):
        raise BadRequest("'input' must be a non-empty string or array")
    dims = positive(body, "dimensions", 8, 4096) or 8
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'")
    data, counted = [], 0
    for index, item in enumerate(items):
        text = item if isinstance(item, str) else orjson.dumps(item).decode()
        counted += tokens(text.replace(",", " "))
        raw = struct.unpack(f"<{dims}H", hashlib.shake_256(text.encode()).digest(2 * dims))
        norm = math.sqrt(sum((v / 32767.5 - 1) ** 2 for v in raw)) or 1.0
        vector = [(v / 32767.5 - 1) / norm for v in raw]
        if encoding == "base64":
            embedding: object = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    model = body.get("model")
    usage = {"prompt_tokens": counted, "total_tokens": counted}
    name = model if isinstance(model, str) else "mock-embed"
    doc = {"object": "list", "data": data, "model": name, "usage": usage}
    return httpx.Response(200, headers=_JSON, content=orjson.dumps(doc))
