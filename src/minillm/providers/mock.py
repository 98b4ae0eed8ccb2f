"""The built-in offline provider ``mock``: a fake OpenAI-compatible API, in-process.

``mock`` needs no API key and no network.  It is an httpx transport, so the
gateway reaches it through the same code as any OpenAI-compatible provider
(``httpx.AsyncClient(transport=MockTransport(), base_url="http://mock.invalid/v1")``)
and Anthropic-format clients reach it through the real translation layer.

It answers ``POST …/chat/completions``, ``POST …/embeddings`` and ``GET …/models``
under any base URL; other paths get a 404 and malformed requests a 400, with
OpenAI-shaped error bodies.  Everything is deterministic:

* **Replies** echo the last user message, ``"You said: <text>"`` (text parts
  joined with spaces; a greeting if there is no user text).  Any model name is
  accepted and echoed.  Only one choice is returned (``n`` is ignored).
* **Usage** is estimated as ``round(words * 4 / 3)`` tokens (at least 1), over
  all message text for the prompt and over the reply for the completion.
* **Tools**: with ``tools`` offered and ``tool_choice`` not ``"none"``, the mock
  calls a tool when ``tool_choice`` is ``"required"`` or names a function, or
  when the last user message mentions a tool by name or says "tool".  It calls
  the named tool, else the mentioned one, else the first, with arguments built
  from its JSON schema (required properties, or all if none is required:
  strings get the user text, numbers 1, booleans true, enums their first
  value), finishing with ``"tool_calls"``.  When the last message is a tool
  result (and the choice is not forced) it replies ``"Tool <name> returned:
  <content>"``, so two-turn tool conversations work.
* **max_tokens** / **max_completion_tokens** cut a text reply to that many
  words, with ``finish_reason: "length"`` (tool-call arguments are not cut).
* **Streaming** sends ``chat.completion.chunk`` events: the role; the text word
  by word (at most 64 deltas, longer replies are grouped) or the tool call (id
  and name, then the arguments in several fragments); a chunk with the
  ``finish_reason``; a usage chunk if ``stream_options.include_usage``; then
  ``data: [DONE]``.  Chunks are ``chunk_delay`` seconds apart (default 0.02);
  closing the response stops the stream at once.  Streaming requires Trio.
* **Embeddings** are unit vectors of ``dimensions`` (default 8) floats hashed
  from each input, as ``float`` lists or ``base64`` (``encoding_format``).
* **Models** lists ``mock-1``, ``mock-echo`` and ``mock-embed``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import re
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import trio

from minillm.errors import BadRequest, GatewayError, NotFound, render_error

__all__ = ["MOCK_MODELS", "MockTransport"]

MOCK_MODELS = ("mock-1", "mock-echo", "mock-embed")

Json = dict[str, object]

_GREETING = "Hello! I am the minillm mock model. Send me a message and I will echo it."
_MAX_DELTAS = 64
_MAX_DEPTH = 8
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_MODEL_LIST = [
    {"id": m, "object": "model", "created": 0, "owned_by": "minillm"} for m in MOCK_MODELS
]
_MODELS_BODY = orjson.dumps({"object": "list", "data": _MODEL_LIST})
_DONE = b"data: [DONE]\n\n"
_WORD_START = re.compile(r"(?<=\s)(?=\S)")
_SAYS_TOOL = re.compile(r"\btools?\b")


@dataclass(frozen=True, slots=True)
class _Reply:
    text: str | None
    call: tuple[str, str, str] | None  # id, function name, JSON arguments
    finish_reason: str
    usage: dict[str, int]


class MockTransport(httpx.AsyncBaseTransport):
    """An httpx transport answering the OpenAI API offline (see the module docs)."""

    def __init__(self, *, chunk_delay: float = 0.02) -> None:
        if chunk_delay < 0:
            raise ValueError("chunk_delay must be >= 0")
        self._chunk_delay = chunk_delay
        self._ids = itertools.count(1)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path.rstrip("/"), request.method
        try:
            if method == "POST" and path.endswith("/chat/completions"):
                return self._chat(await _read_json(request))
            if method == "POST" and path.endswith("/embeddings"):
                return _embeddings(await _read_json(request))
            if method == "GET" and path.endswith("/models"):
                return httpx.Response(200, headers=_JSON, content=_MODELS_BODY)
            raise NotFound(f"Invalid URL ({method} {path})")
        except GatewayError as exc:
            return httpx.Response(exc.status, headers=_JSON, content=render_error("openai", exc))

    def _chat(self, body: Json) -> httpx.Response:
        reply = _plan(body)
        model = body.get("model")
        head: Json = {
            "id": f"chatcmpl-mock{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model if isinstance(model, str) else MOCK_MODELS[0],
            "system_fingerprint": "fp_mock",
        }
        if body.get("stream") is True:
            usage = _obj(body.get("stream_options")).get("include_usage") is True
            stream = _SSEStream(_chunks(head, reply, usage), self._chunk_delay)
            return httpx.Response(200, headers=_SSE, stream=stream)
        message: Json = {"role": "assistant", "content": reply.text, "refusal": None}
        if reply.call is not None:
            call_id, name, args = reply.call
            function = {"name": name, "arguments": args}
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": function}]
        choice = {"index": 0, "message": message, "logprobs": None}
        head["choices"] = [{**choice, "finish_reason": reply.finish_reason}]
        head["usage"] = reply.usage
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


def _obj(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _text(content: object) -> str:
    """The text of a message's ``content``: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    return " ".join(t for p in _list(content) if isinstance(t := _obj(p).get("text"), str))


def _tokens(text: str) -> int:
    return max(1, round(len(text.split()) * 4 / 3))


def _positive(body: Json, key: str, default: int | None, most: int = 1 << 30) -> int | None:
    value = body.get(key, default)
    if value is None or (type(value) is int and 1 <= value <= most):
        return value
    raise BadRequest(f"'{key}' must be an integer from 1 to {most}")


def _plan(body: Json) -> _Reply:
    """Decide the whole reply to a chat completion request."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw or not all(isinstance(m, dict) for m in raw):
        raise BadRequest("'messages' must be a non-empty array of message objects")
    messages: list[Json] = raw
    calls = [_obj(_obj(c).get("function")) for m in messages for c in _list(m.get("tool_calls"))]
    texts = [_text(m.get("content")) for m in messages] + [_text(c.get("arguments")) for c in calls]
    prompt = _tokens(" ".join(texts))
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    user = users[-1] if users else ""
    limit = _positive(body, "max_completion_tokens", None) or _positive(body, "max_tokens", None)
    call = _choose_tool(body, messages, user)
    if call is not None:
        return _Reply(None, call, "tool_calls", _usage(prompt, _tokens(f"{call[1]} {call[2]}")))
    last = messages[-1]
    if last.get("role") == "tool":
        text = f"Tool {_tool_name(messages, last)} returned: {_text(last.get('content'))}"
    else:
        text = f"You said: {user}" if user.strip() else _GREETING
    finish = "stop"
    if limit is not None and len(words := text.split()) > limit:
        text, finish = " ".join(words[:limit]), "length"
    return _Reply(text, None, finish, _usage(prompt, _tokens(text)))


def _usage(prompt: int, completion: int) -> dict[str, int]:
    total = prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _choose_tool(body: Json, messages: list[Json], user: str) -> tuple[str, str, str] | None:
    tools: Json = {}  # function name -> parameters schema, in offered order
    for tool in _list(body.get("tools")):
        function = _obj(_obj(tool).get("function"))
        if isinstance(name := function.get("name"), str):
            tools[name] = function.get("parameters")
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    said = user.lower()
    mentioned = [n for n in tools if re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", said)]
    if isinstance(choice, dict):
        name = _obj(choice.get("function")).get("name")
        if not isinstance(name, str) or name not in tools:
            raise BadRequest(f"tool_choice names a function not in 'tools': {name!r}")
    elif choice != "required" and (
        messages[-1].get("role") == "tool" or not (mentioned or _SAYS_TOOL.search(said))
    ):
        return None
    else:
        name = (mentioned or list(tools))[0]
    schema = {**_obj(tools[name]), "type": "object"}  # arguments are always an object
    args = orjson.dumps(_fill(schema, user or "mock", 0)).decode()
    digest = hashlib.blake2b(f"{len(messages)}:{name}:{args}".encode(), digest_size=12)
    return f"call_{digest.hexdigest()}", name, args


def _fill(schema: object, text: str, depth: int) -> object:
    """A value matching the JSON schema ``schema``, with strings set to ``text``."""
    s = _obj(schema)
    if enum := _list(s.get("enum")):
        return enum[0]
    if "const" in s:
        return s["const"]
    if options := _list(s.get("anyOf")) or _list(s.get("oneOf")) or _list(s.get("allOf")):
        return _fill(options[0], text, depth)
    kind = s.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in s):
        props = _obj(s.get("properties")) if depth < _MAX_DEPTH else {}
        required = s.get("required")
        wanted = required if isinstance(required, list) else list(props)
        names = [n for n in wanted if isinstance(n, str) and n in props]
        return {n: _fill(props[n], text, depth + 1) for n in names}
    if kind == "array":
        return [_fill(s.get("items"), text, depth + 1)] if depth < _MAX_DEPTH else []
    if kind in ("integer", "number", "boolean"):
        return True if kind == "boolean" else 1
    return None if kind == "null" else text


def _tool_name(messages: list[Json], result: Json) -> str:
    """The function name of the call that the tool ``result`` answers."""
    for message in reversed(messages):
        for call in map(_obj, _list(message.get("tool_calls"))):
            name = _obj(call.get("function")).get("name")
            if call.get("id") == result.get("tool_call_id") and isinstance(name, str):
                return name
    return name if isinstance(name := result.get("name"), str) else "tool"


def _sse(event: Json) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


def _chunks(head: Json, reply: _Reply, include_usage: bool) -> list[bytes]:
    """The whole SSE body of a streamed reply, one frame per chunk."""
    base: Json = {**head, "object": "chat.completion.chunk"}
    if include_usage:
        base["usage"] = None

    def frame(delta: Json, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**base, "choices": [choice]})

    frames = [frame({"role": "assistant", "content": None if reply.call else ""})]
    if reply.call is None:
        words = [w for w in _WORD_START.split(reply.text or "") if w]
        step = max(1, -(-len(words) // _MAX_DELTAS))
        pieces = ("".join(words[i : i + step]) for i in range(0, len(words), step))
        frames += [frame({"content": piece}) for piece in pieces]
    else:
        call_id, name, args = reply.call
        function = {"name": name, "arguments": ""}
        start = {"index": 0, "id": call_id, "type": "function", "function": function}
        frames.append(frame({"tool_calls": [start]}))
        step = max(1, -(-len(args) // 4))  # >= 2 fragments, as arguments are at least "{}"
        parts = (
            {"index": 0, "function": {"arguments": args[i : i + step]}}
            for i in range(0, len(args), step)
        )
        frames += [frame({"tool_calls": [part]}) for part in parts]
    frames.append(frame({}, reply.finish_reason))
    if include_usage:
        frames.append(_sse({**base, "choices": [], "usage": reply.usage}))
    frames.append(_DONE)
    return frames


def _embeddings(body: Json) -> httpx.Response:
    inputs = body.get("input")
    if isinstance(inputs, str) or (inputs and all(type(i) is int for i in _list(inputs))):
        inputs = [inputs]  # one string or one token array
    items = _list(inputs)
    if not items or not all(isinstance(i, str) or _list(i) for i in items):
        raise BadRequest("'input' must be a non-empty string or array")
    dims = _positive(body, "dimensions", 8, 4096) or 8
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'")
    data, tokens = [], 0
    for index, item in enumerate(items):
        text = item if isinstance(item, str) else orjson.dumps(item).decode()
        tokens += _tokens(text.replace(",", " "))
        raw = struct.unpack(f"<{dims}H", hashlib.shake_256(text.encode()).digest(2 * dims))
        norm = math.sqrt(sum((v / 32767.5 - 1) ** 2 for v in raw)) or 1.0
        vector = [(v / 32767.5 - 1) / norm for v in raw]
        if encoding == "base64":
            embedding: object = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    model = body.get("model")
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    name = model if isinstance(model, str) else "mock-embed"
    doc = {"object": "list", "data": data, "model": name, "usage": usage}
    return httpx.Response(200, headers=_JSON, content=orjson.dumps(doc))
