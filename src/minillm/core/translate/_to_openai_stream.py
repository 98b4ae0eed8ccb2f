"""Anthropic Messages SSE -> OpenAI ``chat.completion.chunk`` SSE.

Chunks, all with id ``"chatcmpl-" + message id``, the same ``created`` and the
given ``model``:

1. on ``message_start``: ``delta: {role: "assistant", content: ""}``;
2. ``text_delta`` -> ``delta.content``; a ``tool_use`` block -> ``delta.tool_calls``
   with the call's ``index`` (its rank among the message's tool blocks), ``id``,
   ``type``, ``function.name`` and ``arguments: ""``, then each
   ``input_json_delta`` -> an ``arguments`` fragment (a call that streamed no
   arguments gets ``"{}"`` at its block's end, as clients ``json.loads`` them);
3. on ``message_delta``: ``delta: {}`` with the mapped ``finish_reason``;
4. on ``message_stop``: a ``choices: []`` chunk with ``usage`` when
   ``include_usage``, then ``data: [DONE]``.

``ping``, thinking / server-tool blocks, citations and signatures are dropped.
An upstream ``error`` event becomes :func:`stream_error` and ends the stream
(no ``[DONE]``); so does an upstream that ends before ``message_start``, or
before its finish (a ``message_delta`` with a ``stop_reason``, or
``message_stop``): a cut-short answer must not look whole.  Either error is
kept as ``.error``.  After a ``stop_reason`` without ``message_stop``,
:meth:`close` sends the usage and ``[DONE]`` still owed.  Malformed upstream data raises
:class:`~minillm.core.errors.UpstreamProtocolError` from :meth:`feed`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from minillm.core.errors import GatewayError, UpstreamProtocolError
from minillm.core.sse import SSEDecoder, SSEEvent
from minillm.core.translate._common import (
    dumps_arguments,
    finish_reason,
    loads_upstream,
    openai_id,
    openai_usage,
)
from minillm.core.translate._stream_out import DONE, openai_data, stream_cut, stream_error
from minillm.core.translate.upstream_errors import stream_upstream_error

__all__ = ["AnthropicToOpenAIStream"]


class AnthropicToOpenAIStream:
    """Upstream Anthropic SSE in, OpenAI chunk SSE out (see the module docstring)."""

    def __init__(self, *, model: str, include_usage: bool, created: int | None = None) -> None:
        self._decoder = SSEDecoder()
        self._model = model
        self._include_usage = include_usage
        self._created = int(time.time()) if created is None else created
        self._id: str | None = None
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._no_args: set[int] = set()  # tool blocks that have sent no argument text yet
        self._finish: str | None = None  # set once the finish chunk was sent
        self._stopped = False  # the upstream sent its stop_reason
        self._usage: dict[str, Any] = {}  # Anthropic usage, merged as it arrives
        self._done = False
        self._text_head: bytes | None = None  # a text chunk, split around its text
        self._text_tail = b""
        self.input_tokens: int | None = None
        """Prompt tokens, cache reads and writes included."""
        self.output_tokens: int | None = None
        self.error: GatewayError | None = None
        """The error that ended the stream (the upstream's error event, or a cut), if any."""

    def feed(self, chunk: bytes) -> bytes:
        """Translate upstream bytes (any chunking); may return ``b""``."""
        return b"" if self._done else self._on_events(self._decoder.feed(chunk))

    def close(self) -> bytes:
        """The upstream ended: flush it and send the terminal chunks still owed."""
        if self._done:
            return b""
        out = self._on_events(self._decoder.close())
        if self._done:
            return out
        if not self._stopped:
            return out + self.fail(stream_cut(started=self._id is not None))
        self._done = True
        return out + self._end()

    def fail(self, exc: GatewayError) -> bytes:
        """End the stream with ``exc`` as its error chunk (no ``[DONE]``)."""
        self._done = True
        self.error = exc
        return stream_error("openai", exc)

    def _on_events(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self._done:
                break
            data = loads_upstream(event.data)
            kind = data.get("type") if isinstance(data, dict) else None
            handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:  # ping, unknown future events
                continue
            if self._id is None and kind not in ("message_start", "error"):
                raise UpstreamProtocolError(f"Provider sent {kind} before message_start")
            out.append(handler(self, data))
        return b"".join(out)

    def _text(self, text: str) -> bytes:
        """The most frequent chunk, pre-encoded: what ``_chunk`` builds for a text delta."""
        if self._text_head is None:
            head = self._chunk({"content": ""})
            self._text_head, self._text_tail = head.split(b'"content":""', 1)
            self._text_head += b'"content":'
        return self._text_head + orjson.dumps(text) + self._text_tail

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return openai_data({
            "id": self._id, "object": "chat.completion.chunk", "created": self._created,
            "model": self._model, "choices": [choice],
        })  # fmt: skip

    def _message_start(self, data: dict[str, Any]) -> bytes:
        message = data.get("message")
        if not isinstance(message, dict) or self._id is not None:
            raise UpstreamProtocolError("Provider sent an invalid message_start")
        self._id = openai_id(message.get("id"))
        self._add_usage(message.get("usage"))
        return self._chunk({"role": "assistant", "content": ""})

    def _block_start(self, data: dict[str, Any]) -> bytes:
        block, index = data.get("content_block"), data.get("index")
        if not isinstance(block, dict) or not isinstance(index, int):
            raise UpstreamProtocolError("Provider sent an invalid content_block_start")
        if block.get("type") == "text" and (text := block.get("text")):
            return self._chunk({"content": text})
        if block.get("type") != "tool_use":
            return b""
        self._tools[index] = len(self._tools)
        args = dumps_arguments(block["input"]) if block.get("input") else ""
        if not args:
            self._no_args.add(index)
        fn = {"name": block.get("name", ""), "arguments": args}
        call = {"index": self._tools[index], "id": block.get("id", ""), "type": "function"}
        return self._chunk({"tool_calls": [{**call, "function": fn}]})

    def _block_delta(self, data: dict[str, Any]) -> bytes:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            raise UpstreamProtocolError("Provider sent an invalid content_block_delta")
        kind = delta.get("type")
        if kind == "text_delta" and (text := delta.get("text")):
            return self._text(text)
        index, part = data.get("index"), delta.get("partial_json")
        if kind == "input_json_delta" and index in self._tools and part:
            self._no_args.discard(index)
            return self._arguments(self._tools[index], part)
        return b""

    def _block_stop(self, data: dict[str, Any]) -> bytes:
        """A tool call that streamed no arguments gets ``"{}"``: OpenAI clients parse them."""
        if (index := data.get("index")) not in self._no_args:
            return b""
        self._no_args.discard(index)
        return self._arguments(self._tools[index], "{}")

    def _arguments(self, tool: int, part: str) -> bytes:
        return self._chunk({"tool_calls": [{"index": tool, "function": {"arguments": part}}]})

    def _message_delta(self, data: dict[str, Any]) -> bytes:
        self._add_usage(data.get("usage"))
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        self._stopped = self._stopped or reason is not None
        return self._finish_chunk(finish_reason(reason))

    def _message_stop(self, data: dict[str, Any]) -> bytes:
        self._done = True
        return self._finish_chunk("stop") + self._end()

    def _error(self, data: dict[str, Any]) -> bytes:
        return self.fail(stream_upstream_error("anthropic", data))

    def _finish_chunk(self, reason: str) -> bytes:
        if self._finish is not None:
            return b""
        self._finish = reason
        return self._chunk({}, reason)

    def _end(self) -> bytes:
        if not self._include_usage:
            return DONE
        return openai_data({
            "id": self._id, "object": "chat.completion.chunk", "created": self._created,
            "model": self._model, "choices": [], "usage": openai_usage(self._usage),
        }) + DONE  # fmt: skip

    def _add_usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        self._usage.update((k, v) for k, v in usage.items() if v is not None)
        counts = openai_usage(self._usage)
        if any(k in self._usage for k in ("input_tokens", "cache_read_input_tokens")):
            self.input_tokens = counts["prompt_tokens"]
        if "output_tokens" in self._usage:
            self.output_tokens = counts["completion_tokens"]

    _HANDLERS = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "content_block_stop": _block_stop,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
        "error": _error,
    }
