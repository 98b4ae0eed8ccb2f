"""A scripted fake provider for the agent CLIs: Anthropic Messages, OpenAI Chat
Completions and OpenAI Responses, plain and streamed, as an ASGI app.

A Chat Completions or Messages request with a parameter OpenAI or Anthropic would
reject gets their 400 (:func:`chat_problem`, :func:`messages_problem`).  Each other
request is recorded, then answered by :func:`decide`:

* the last input is a tool result: answer in text, quoting it, and remember
  whether it held :data:`MARKER` (the tool round trip reached the provider);
* the prompt asks for ``echo minillm-ok`` and the CLI declared a shell tool:
  call that tool with arguments fitting its schema;
* anything else: answer :data:`PLAIN_ANSWER`.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

MARKER = "minillm-ok"
COMMAND = f"echo {MARKER}"
PLAIN_ANSWER = "pong from the fake provider"
FINAL_PREFIX = "the tool printed:"
SHELL_TOOLS = ("Bash", "shell", "shell_command", "exec_command")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    arguments: dict[str, Any]


Action = Text | Call


@dataclass(slots=True)
class Seen:
    """One request the fake received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    action: Action


@dataclass(slots=True)
class FakeProvider:
    requests: list[Seen] = field(default_factory=list)
    tool_outputs: list[str] = field(default_factory=list)  # tool results that reached the fake
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def reset(self) -> None:
        self.requests.clear()
        self.tool_outputs.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        api = {
            "/v1/messages": "anthropic",
            "/v1/chat/completions": "chat",
            "/v1/responses": "responses",
        }.get(path)
        if scope["method"] != "POST" or api is None:
            await _send(send, 404, "application/json", b'{"error":{"message":"not found"}}')
            return
        body = orjson.loads(raw or b"{}")
        if problem := _PROBLEMS.get(api, _no_problem)(body):
            error = {"message": problem, "type": "invalid_request_error"}
            wrapped = {"type": "error", "error": error} if api == "anthropic" else {"error": error}
            await _send(send, 400, "application/json", orjson.dumps(wrapped))
            return
        action = self.decide(api, body)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Seen(path, headers, body, action))
        n = next(self._ids)
        if body.get("stream"):
            await _send(send, 200, "text/event-stream", b"".join(_STREAMS[api](action, body, n)))
        else:
            await _send(send, 200, "application/json", orjson.dumps(_BODIES[api](action, body, n)))

    def decide(self, api: str, body: dict[str, Any]) -> Action:
        last = _last_input(api, body)
        if last is not None:
            dumped = orjson.dumps(last).decode()
            self.tool_outputs.append(dumped)
            return Text(f"{FINAL_PREFIX} {MARKER if MARKER in dumped else 'something else'}")
        if COMMAND in orjson.dumps(body.get("messages") or body.get("input")).decode():
            for tool in body.get("tools") or []:
                if call := _shell_call(tool):
                    return call
        return Text(PLAIN_ANSWER)


_CHAT_PARAMS = frozenset((
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions",
    "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities",
    "n", "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
    "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier",
    "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
    "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
))  # fmt: skip


def chat_problem(body: dict[str, Any]) -> str | None:
    """What OpenAI would reject in a Chat Completions request (reasoning model: ``gpt-5*``)."""
    if unknown := sorted(set(body) - _CHAT_PARAMS):
        return f"Unrecognized request argument supplied: {unknown[0]}"
    if len(body.get("user") or "") > 64:
        return "Invalid 'user': string too long. Expected a string with maximum length 64."
    if str(body.get("model")).startswith("gpt-5"):
        for key in ("max_tokens", "temperature", "top_p"):
            if key in body:
                return f"Unsupported parameter: '{key}' is not supported with this model."
    return None


_MESSAGES_PARAMS = frozenset((
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "metadata", "thinking", "service_tier",
    "container", "mcp_servers", "context_management", "output_config", "output_format",
    "inference_geo", "speed", "diagnostics", "cache_control",
))  # fmt: skip
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def messages_problem(body: dict[str, Any]) -> str | None:
    """What Anthropic would reject in a Messages request."""
    if unknown := sorted(set(body) - _MESSAGES_PARAMS):
        return f"{unknown[0]}: Extra inputs are not permitted"
    for i, tool in enumerate(body.get("tools") or []):
        if not _TOOL_NAME.match(str(tool.get("name"))):
            return f"tools.{i}.custom.name: String should match pattern '{_TOOL_NAME.pattern}'"
    return None


def _no_problem(body: dict[str, Any]) -> None:
    return None


_PROBLEMS = {"chat": chat_problem, "anthropic": messages_problem}


def _last_input(api: str, body: dict[str, Any]) -> Any:
    """The tool result the request ends with, or None."""
    if api == "responses":
        items = body.get("input")
        last = items[-1] if isinstance(items, list) and items else None
        ok = isinstance(last, dict) and str(last.get("type", "")).endswith("_output")
        return last if ok else None
    messages = body.get("messages") or [None]
    last = messages[-1]
    if not isinstance(last, dict):
        return None
    if api == "chat":
        return last if last.get("role") == "tool" else None
    content = last.get("content")
    results = (
        [b for b in content if b.get("type") == "tool_result"] if isinstance(content, list) else []
    )
    return results or None


def _shell_call(tool: dict[str, Any]) -> Call | None:
    """A call running :data:`COMMAND` with the declared shell ``tool``, or None."""
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    name = fn.get("name")
    if name not in SHELL_TOOLS:
        return None
    schema = fn.get("input_schema") or fn.get("parameters") or {}
    props = schema.get("properties") or {}
    if "cmd" in props:
        return Call(name, {"cmd": COMMAND})
    if (props.get("command") or {}).get("type") == "array":
        return Call(name, {"command": ["bash", "-lc", COMMAND]})
    return Call(name, {"command": COMMAND, "description": "Print a marker"})


async def _send(send: Send, status: int, content_type: str, body: bytes) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _sse(kind: str | None, data: Any) -> bytes:
    head = f"event: {kind}\n".encode() if kind else b""
    return head + b"data: " + (data if isinstance(data, bytes) else orjson.dumps(data)) + b"\n\n"


USAGE_IN, USAGE_OUT = 12, 7


# -- Anthropic Messages -------------------------------------------------------------------


def _anthropic_block(action: Action, n: int) -> dict[str, Any]:
    if isinstance(action, Text):
        return {"type": "text", "text": action.text}
    return {"type": "tool_use", "id": f"toolu_{n}", "name": action.name, "input": action.arguments}


def _anthropic_body(action: Action, body: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [_anthropic_block(action, n)],
        "stop_reason": "end_turn" if isinstance(action, Text) else "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
    }


def _anthropic_stream(action: Action, body: dict[str, Any], n: int) -> Iterator[bytes]:
    whole = _anthropic_body(action, body, n)
    block = whole.pop("content")[0]
    start = {
        **whole,
        "content": [],
        "stop_reason": None,
        "usage": {**whole["usage"], "output_tokens": 1},
    }
    yield _sse("message_start", {"type": "message_start", "message": start})
    if block["type"] == "text":
        first, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
    else:
        first = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
    yield _sse(
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": first}
    )
    yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    stop = {"stop_reason": whole["stop_reason"], "stop_sequence": None}
    usage = {"output_tokens": USAGE_OUT}
    yield _sse("message_delta", {"type": "message_delta", "delta": stop, "usage": usage})
    yield _sse("message_stop", {"type": "message_stop"})


# -- OpenAI Chat Completions ----------------------------------------------------------------

_CHAT_USAGE = {
    "prompt_tokens": USAGE_IN,
    "completion_tokens": USAGE_OUT,
    "total_tokens": USAGE_IN + USAGE_OUT,
}


def _chat_message(action: Action, n: int) -> dict[str, Any]:
    if isinstance(action, Text):
        return {"role": "assistant", "content": action.text}
    fn = {"name": action.name, "arguments": orjson.dumps(action.arguments).decode()}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": f"call_{n}", "type": "function", "function": fn}],
    }


def _finish(action: Action) -> str:
    return "stop" if isinstance(action, Text) else "tool_calls"


def _chat_body(action: Action, body: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {"index": 0, "message": _chat_message(action, n), "finish_reason": _finish(action)}
        ],
        "usage": _CHAT_USAGE,
    }


def _chat_stream(action: Action, body: dict[str, Any], n: int) -> Iterator[bytes]:
    head = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time())}
    head["model"] = body.get("model")
    delta = _chat_message(action, n)
    if "tool_calls" in delta:
        delta["tool_calls"][0]["index"] = 0
    yield _sse(None, {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    yield _sse(
        None, {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": _finish(action)}]}
    )
    yield _sse(None, {**head, "choices": [], "usage": _CHAT_USAGE})
    yield _sse(None, b"[DONE]")


# -- OpenAI Responses -----------------------------------------------------------------------


def _response_item(action: Action, n: int) -> dict[str, Any]:
    if isinstance(action, Text):
        part = {"type": "output_text", "text": action.text, "annotations": []}
        return {
            "id": f"msg_{n}",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [part],
        }
    return {
        "id": f"fc_{n}",
        "type": "function_call",
        "call_id": f"call_{n}",
        "name": action.name,
        "arguments": orjson.dumps(action.arguments).decode(),
        "status": "completed",
    }


def _responses_body(action: Action, body: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "id": f"resp_{n}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": body.get("model"),
        "output": [_response_item(action, n)],
        "usage": {
            "input_tokens": USAGE_IN,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": USAGE_OUT,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": USAGE_IN + USAGE_OUT,
        },
    }


def _responses_stream(action: Action, body: dict[str, Any], n: int) -> Iterator[bytes]:
    whole = _responses_body(action, body, n)
    item = whole["output"][0]
    seq = itertools.count()

    def event(kind: str, **data: Any) -> bytes:
        return _sse(kind, {"type": kind, "sequence_number": next(seq), **data})

    yield event("response.created", response={**whole, "status": "in_progress", "output": []})
    yield event("response.in_progress", response={**whole, "status": "in_progress", "output": []})
    at = {"output_index": 0}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        yield event(
            "response.output_item.added",
            **at,
            item={**item, "status": "in_progress", "content": []},
        )
        part = {"item_id": item["id"], **at, "content_index": 0}
        yield event(
            "response.content_part.added",
            **part,
            part={"type": "output_text", "text": "", "annotations": []},
        )
        yield event("response.output_text.delta", **part, delta=text)
        yield event("response.output_text.done", **part, text=text)
        yield event("response.content_part.done", **part, part=item["content"][0])
    else:
        yield event(
            "response.output_item.added",
            **at,
            item={**item, "status": "in_progress", "arguments": ""},
        )
        args = {"item_id": item["id"], **at}
        yield event("response.function_call_arguments.delta", **args, delta=item["arguments"])
        yield event("response.function_call_arguments.done", **args, arguments=item["arguments"])
    yield event("response.output_item.done", **at, item=item)
    yield event("response.completed", response=whole)


_BODIES = {"anthropic": _anthropic_body, "chat": _chat_body, "responses": _responses_body}
_STREAMS = {"anthropic": _anthropic_stream, "chat": _chat_stream, "responses": _responses_stream}
