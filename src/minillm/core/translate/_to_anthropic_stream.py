"""OpenAI ``chat.completion.chunk`` SSE -> Anthropic Messages SSE.

Events, each named after its ``type``:

1. on the first chunk: ``message_start`` (id ``"msg_" + chunk id``, the given
   ``model``, empty content, usage from that chunk or zeros);
2. ``delta.content`` (or ``refusal``) -> a ``text`` block; each distinct
   ``tool_calls[].index`` -> a ``tool_use`` block whose ``id`` and ``name`` come
   from its first delta.  Its ``arguments`` fragments are held (up to 1 MiB)
   and sent as one ``input_json_delta`` when the block stops: the JSON object
   they make, or ``{"_raw": "<arguments>"}`` when they make none, as in the
   non-streaming reply (the anthropic SDK parses the whole input).  One
   block is open at a time: it is stopped before the next one starts, and
   indexes count up from 0;
3. at the end (``[DONE]``, or :meth:`close` after a ``finish_reason``; never at
   ``finish_reason``, since OpenAI sends usage in a trailing ``choices: []``
   chunk): the open block's ``content_block_stop``, ``message_delta`` (mapped
   ``stop_reason``, ``end_turn`` when the upstream sent ``[DONE]`` but no
   reason; ``usage`` with ``output_tokens`` and the final input counts) and
   ``message_stop``.

An upstream ``{"error": ...}`` chunk becomes :func:`stream_error` and ends the
stream; so does a stream that ends before any chunk, or with neither a
``finish_reason`` nor ``[DONE]`` (cut short: the client must not take it for a
whole answer).  Either error is kept as ``.error``.  Malformed
upstream data raises :class:`~minillm.core.errors.UpstreamProtocolError` from
:meth:`feed`.  Limits: only ``choices[0]`` is read; argument fragments of a
tool call that resume after another block started go to the (already stopped)
block of that call, as they come; ``reasoning_content`` is dropped.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson

from minillm.core.errors import GatewayError, UpstreamProtocolError
from minillm.core.translate._chunk_reader import ChatChunkReader
from minillm.core.translate._common import (
    anthropic_id,
    anthropic_usage,
    dumps_arguments,
    stop_reason,
    tool_input,
)
from minillm.core.translate._stream_out import anthropic_event, stream_cut, stream_error
from minillm.core.translate.upstream_errors import stream_upstream_error

__all__ = ["OpenAIToAnthropicStream"]

MAX_ARGUMENTS = 1 << 20  # characters of one tool call's arguments held back


class _S(enum.Enum):
    START = enum.auto()  # nothing sent yet
    MESSAGE = enum.auto()  # message_start sent, no block open
    TEXT = enum.auto()  # a text block is open
    TOOL = enum.auto()  # a tool_use block is open
    END = enum.auto()  # message_stop or error sent


_NEXT = {
    _S.START: {_S.MESSAGE, _S.END},
    _S.MESSAGE: {_S.TEXT, _S.TOOL, _S.END},
    _S.TEXT: {_S.MESSAGE, _S.END},
    _S.TOOL: {_S.MESSAGE, _S.END},
    _S.END: set(),
}


class OpenAIToAnthropicStream(ChatChunkReader):
    """Upstream OpenAI chunk SSE in, Anthropic SSE out (see the module docstring)."""

    def __init__(self, *, model: str) -> None:
        super().__init__()
        self._model = model
        self._state = _S.START
        self._index = -1  # Anthropic index of the last block started
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> Anthropic block index
        self._args: list[str] = []  # the open tool block's argument fragments
        self._args_size = 0
        self._usage: dict[str, Any] | None = None  # the last OpenAI usage seen
        self.input_tokens: int | None = None
        """Prompt tokens, cached ones included."""
        self.output_tokens: int | None = None
        self.error: GatewayError | None = None
        """The error that ended the stream (the upstream's error chunk, or a cut), if any."""

    def _ended(self) -> bool:
        return self._state is _S.END

    def _started(self) -> bool:
        return self._state is not _S.START

    def fail(self, exc: GatewayError) -> bytes:
        """End the stream with ``exc`` as its ``error`` event."""
        self._state = _S.END
        self.error = exc
        return stream_error("anthropic", exc)

    def _to(self, state: _S) -> None:
        if state not in _NEXT[self._state]:
            raise AssertionError(f"bad transition {self._state} -> {state}")
        self._state = state

    def _on_chunk(self, data: dict[str, Any]) -> bytes:
        if data.get("error"):
            return self.fail(stream_upstream_error("openai", data))
        out: list[bytes] = []
        if isinstance(usage := data.get("usage"), dict):
            self._usage = usage
            counts = anthropic_usage(usage)
            self.input_tokens = counts["input_tokens"] + counts.get("cache_read_input_tokens", 0)
            self.output_tokens = counts["output_tokens"]
        choices = data.get("choices")
        if self._state is _S.START and (choices or self._usage):  # skip Azure's filter chunk
            out.append(self._message_start(data))
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                out.append(self._on_delta(delta))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def _message_start(self, data: dict[str, Any]) -> bytes:
        self._to(_S.MESSAGE)
        usage = anthropic_usage(self._usage) if self._usage else {}
        message: dict[str, Any] = {
            "id": anthropic_id(data.get("id")), "type": "message", "role": "assistant",
            "model": self._model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": usage.get("input_tokens", 0), "output_tokens": 0},
        }  # fmt: skip
        return anthropic_event({"type": "message_start", "message": message})

    def _on_delta(self, delta: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        text = delta.get("content") or delta.get("refusal")
        if text and isinstance(text, str):
            if self._state is not _S.TEXT:
                out.append(self._start_block(_S.TEXT, {"type": "text", "text": ""}))
            out.append(_text_delta(self._index, text))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                out.append(self._on_tool_call(call))
        return b"".join(out)

    def _on_tool_call(self, call: dict[str, Any]) -> bytes:
        key = call.get("index")
        if not isinstance(key, int):  # non-conformant servers: an id starts a new call
            key = len(self._tools) if call.get("id") or not self._tools else max(self._tools)
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        out = b""
        if key not in self._tools:
            block_id, name = call.get("id") or f"toolu_{len(self._tools)}", fn.get("name") or ""
            block: dict[str, Any] = {"type": "tool_use", "id": block_id, "name": name, "input": {}}
            out = self._start_block(_S.TOOL, block)
            self._tools[key] = self._index
        args = fn.get("arguments")
        if isinstance(args, dict):  # some servers send an object, not a string
            args = dumps_arguments(args)
        if not args or not isinstance(args, str):
            return out
        if self._state is not _S.TOOL or self._tools[key] != self._index:  # a late fragment
            return out + self._json_delta(args, self._tools[key])
        self._args.append(args)
        self._args_size += len(args)
        if self._args_size > MAX_ARGUMENTS:
            raise UpstreamProtocolError("Provider sent tool call arguments over 1 MiB")
        return out

    def _start_block(self, state: _S, block: dict[str, Any]) -> bytes:
        out = self._stop_block()
        self._to(state)
        self._index += 1
        return out + anthropic_event(
            {"type": "content_block_start", "index": self._index, "content_block": block}
        )

    def _stop_block(self) -> bytes:
        if self._state not in (_S.TEXT, _S.TOOL):
            return b""
        out = b""
        if self._args:  # the tool block's arguments, checked whole
            arguments = "".join(self._args)
            self._args, self._args_size = [], 0
            out = self._json_delta(dumps_arguments(tool_input(arguments)), self._index)
        self._to(_S.MESSAGE)
        return out + anthropic_event({"type": "content_block_stop", "index": self._index})

    def _json_delta(self, partial: str, index: int) -> bytes:
        return self._delta({"type": "input_json_delta", "partial_json": partial}, index)

    def _delta(self, delta: dict[str, Any], index: int) -> bytes:
        return anthropic_event({"type": "content_block_delta", "index": index, "delta": delta})

    def _end(self) -> bytes:
        if self._state is _S.START:
            return self.fail(stream_cut(started=False))
        out = self._stop_block()
        self._to(_S.END)
        usage = anthropic_usage(self._usage) if self._usage else {"output_tokens": 0}
        reason = stop_reason(self._finish, tool_calls=bool(self._tools))
        delta = {"stop_reason": reason, "stop_sequence": None}
        out += anthropic_event({"type": "message_delta", "delta": delta, "usage": usage})
        return out + anthropic_event({"type": "message_stop"})


_TEXT_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%s}}\n\n'  # noqa: E501


def _text_delta(index: int, text: str) -> bytes:
    """The most frequent event, pre-encoded: what ``_delta`` would build, without dicts."""
    return _TEXT_DELTA % (index, orjson.dumps(text))
