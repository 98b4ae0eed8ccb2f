"""OpenAI ``chat.completion.chunk`` SSE -> OpenAI Responses SSE.

Events are named after their ``type`` and numbered by ``sequence_number``
from 0, in the order the openai SDK's ``responses.stream()`` accumulator
checks:

1. on the first chunk with choices or usage: ``response.created`` and
   ``response.in_progress`` (the response in progress, no output yet);
2. ``delta.content`` (or ``refusal``) -> a ``message`` item:
   ``response.output_item.added``, ``response.content_part.added``, then
   ``response.output_text.delta`` per fragment;
3. each distinct ``tool_calls[].index`` -> a ``function_call`` item (its
   ``output_item.added`` has the call id and name from the first delta), its
   ``arguments`` fragments -> ``response.function_call_arguments.delta``; a
   custom tool's call -> a ``custom_tool_call`` item whose input is sent whole
   when it ends (``custom_tool_call_input.delta`` / ``.done``), as the chat
   arguments ``{"input": ...}`` must be complete to be decoded;
4. an item ends (``*.done`` events, then ``response.output_item.done`` with the
   whole item) when one of the other kind starts: text closes the open tool
   calls, a tool call closes the message.  Parallel tool calls stay open
   together, so their fragments may interleave;
5. at ``[DONE]``, or at :meth:`~ChatToResponsesStream.close` after a
   ``finish_reason`` (never at ``finish_reason``: usage comes in a trailing
   chunk), the open items end and ``response.completed`` (or
   ``response.incomplete`` for finish reason ``length`` / ``content_filter``)
   carries the whole response with usage.

An upstream ``{"error": ...}`` chunk becomes :func:`responses_stream_error`,
then ``response.failed`` when the response had started, and ends the stream;
so does a stream that ends before any chunk, or with neither a
``finish_reason`` nor ``[DONE]`` (cut short), and so does
:meth:`~ChatToResponsesStream.fail`, with which the gateway ends the stream
with its own errors (numbered after the stream's events).  Malformed upstream
data, and argument fragments of a tool call that already ended, raise
:class:`~minillm.core.errors.UpstreamProtocolError` from
:meth:`~ChatToResponsesStream.feed`.  Only ``choices[0]`` is read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from minillm.core.errors import GatewayError, UpstreamProtocolError, openai_error_type
from minillm.core.translate._chunk_reader import ChatChunkReader
from minillm.core.translate._common import count, dumps_arguments
from minillm.core.translate._responses_common import (
    ResponsesPlan,
    call_item,
    message_id,
    message_item,
    response_id,
    response_object,
    responses_usage,
    text_part,
)
from minillm.core.translate._stream_out import stream_cut
from minillm.core.translate.streams import StreamTranslator
from minillm.core.translate.upstream_errors import stream_upstream_error

__all__ = ["ChainedStream", "ChatToResponsesStream", "responses_stream_error"]

# Gateway error kind -> the Responses ``error.code`` of a failed response.
_FAILED_CODE = {
    "rate_limit_error": "rate_limit_exceeded",
    "invalid_request_error": "invalid_prompt",
    "request_too_large": "invalid_prompt",
}


def responses_stream_error(exc: GatewayError, sequence_number: int = 0) -> bytes:
    """The ``error`` event that ends a Responses stream with ``exc``.

    ``code``, ``message`` and ``param`` are at the top level, as documented,
    and nested in ``error`` as the OpenAI API sends them: the openai SDK raises
    ``APIError`` on an event with a truthy ``error``.
    """
    kind, message = exc.kind, exc.message
    error = {"message": message, "type": openai_error_type(kind), "param": None, "code": kind}
    return _event({
        "type": "error", "code": kind, "message": message, "param": None,
        "error": error, "sequence_number": sequence_number,
    })  # fmt: skip


def _event(obj: dict[str, Any]) -> bytes:
    name: str = obj["type"]
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


_TEXT_DELTA = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":%s,"output_index":%d,"content_index":0,"delta":%s,"logprobs":[],"sequence_number":%d}\n\n'  # noqa: E501


@dataclass(slots=True)
class _Item:
    """An output item being streamed: its text or argument fragments so far."""

    index: int  # output_index
    id: str
    parts: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""  # the chat function name


class ChatToResponsesStream(ChatChunkReader):
    """Upstream chat chunk SSE in (any chunking), Responses SSE out (see the module docstring)."""

    def __init__(self, plan: ResponsesPlan) -> None:
        super().__init__()
        self._plan = plan
        self._seq = 0
        self._id: str | None = None  # set by response.created
        self._created = 0
        self._output: list[dict[str, Any]] = []  # ended items, by output_index
        self._count = 0  # items started
        self._message: _Item | None = None  # the open message item
        self._calls: dict[int, _Item] = {}  # chat tool call index -> open call item
        self._ended_calls: set[int] = set()
        self._usage: object = None
        self._done = False
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.error: GatewayError | None = None
        """The error that ended the stream (the upstream's error chunk, or a cut), if any."""

    def _ended(self) -> bool:
        return self._done

    def _started(self) -> bool:
        return self._id is not None

    def _emit(self, kind: str, **fields: Any) -> bytes:
        self._seq += 1
        return _event({"type": kind, **fields, "sequence_number": self._seq - 1})

    def _on_chunk(self, data: dict[str, Any]) -> bytes:
        if data.get("error"):
            return self.fail(stream_upstream_error("openai", data))
        out: list[bytes] = []
        if isinstance(usage := data.get("usage"), dict):
            self._usage = usage
            self.input_tokens = count(usage.get("prompt_tokens"))
            self.output_tokens = count(usage.get("completion_tokens"))
        choices = data.get("choices")
        if self._id is None and (choices or self._usage):  # skip Azure's filter chunk
            out.append(self._start(data))
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if isinstance(delta := choice.get("delta"), dict):
                text = delta.get("content") or delta.get("refusal")
                if text and isinstance(text, str):
                    out.append(self._text(text))
                calls = delta.get("tool_calls")
                for call in calls if isinstance(calls, list) else ():
                    if isinstance(call, dict):
                        out.append(self._tool_call(call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def _response(self, finish: object = None) -> dict[str, Any]:
        assert self._id is not None
        usage = None if finish is None else responses_usage(self._usage)
        output = self._output if finish is not None else []
        return response_object(
            self._plan, self._id, self._created, output, finish=finish, usage=usage
        )

    def _start(self, data: dict[str, Any]) -> bytes:
        self._id = response_id(data.get("id"))
        created = data.get("created")
        self._created = created if isinstance(created, int) else int(time.time())
        response = self._response()
        return self._emit("response.created", response=response) + self._emit(
            "response.in_progress", response=response
        )

    def _add(self, item: dict[str, Any]) -> bytes:
        self._count += 1
        self._output.append(item)  # replaced by the whole item when it ends
        return self._emit("response.output_item.added", output_index=self._count - 1, item=item)

    # --- text ------------------------------------------------------------------------

    def _text(self, text: str) -> bytes:
        out = self._end_calls()
        if (msg := self._message) is None:
            assert self._id is not None
            msg = self._message = _Item(self._count, message_id(self._id))
            out += self._add(message_item(msg.id, "", "in_progress"))
            out += self._emit(
                "response.content_part.added", item_id=msg.id, output_index=msg.index,
                content_index=0, part=text_part(""),
            )  # fmt: skip
        msg.parts.append(text)
        self._seq += 1
        return out + _TEXT_DELTA % (
            orjson.dumps(msg.id),
            msg.index,
            orjson.dumps(text),
            self._seq - 1,
        )

    def _end_message(self) -> bytes:
        if (msg := self._message) is None:
            return b""
        self._message = None
        text = "".join(msg.parts)
        where = {"item_id": msg.id, "output_index": msg.index, "content_index": 0}
        item = self._output[msg.index] = message_item(msg.id, text)
        return (
            self._emit("response.output_text.done", **where, text=text, logprobs=[])
            + self._emit("response.content_part.done", **where, part=text_part(text))
            + self._emit("response.output_item.done", output_index=msg.index, item=item)
        )

    # --- tool calls ------------------------------------------------------------------

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        key = call.get("index")
        if not isinstance(key, int):  # non-conformant servers: an id starts a new call
            known = self._calls.keys() | self._ended_calls
            key = len(known) if call.get("id") or not known else max(known)
        if key in self._ended_calls:
            raise UpstreamProtocolError("Provider sent arguments for a finished tool call")
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        out = b""
        if (item := self._calls.get(key)) is None:
            out = self._end_message()
            call_id = str(call.get("id") or f"call_{key}")
            item = _Item(self._count, "", call_id=call_id, name=str(fn.get("name") or ""))
            added = call_item(self._plan, item.name, call_id, "", "in_progress")
            item.id = added["id"]
            self._calls[key] = item
            out += self._add(added)
        args = fn.get("arguments")
        if isinstance(args, dict):  # some servers send an object, not a string
            args = dumps_arguments(args)
        if args and isinstance(args, str):
            item.parts.append(args)
            if item.name not in self._plan.custom_tools:
                out += self._emit(
                    "response.function_call_arguments.delta", item_id=item.id,
                    output_index=item.index, delta=args,
                )  # fmt: skip
        return out

    def _end_calls(self) -> bytes:
        out: list[bytes] = []
        for key, call in self._calls.items():
            self._ended_calls.add(key)
            arguments = "".join(call.parts) or "{}"
            item = self._output[call.index] = call_item(
                self._plan, call.name, call.call_id, arguments
            )
            where = {"item_id": call.id, "output_index": call.index}
            if item["type"] == "custom_tool_call":
                if custom := item["input"]:
                    out.append(self._emit("response.custom_tool_call_input.delta", **where,
                                          delta=custom))  # fmt: skip
                out.append(self._emit("response.custom_tool_call_input.done", **where,
                                      input=custom))  # fmt: skip
            else:
                out.append(self._emit("response.function_call_arguments.done", **where,
                                      arguments=arguments))  # fmt: skip
            out.append(self._emit("response.output_item.done", output_index=call.index, item=item))
        self._calls.clear()
        return b"".join(out)

    # --- the end ---------------------------------------------------------------------

    def _end(self) -> bytes:
        if self._id is None:
            return self.fail(stream_cut(started=False))
        out = self._end_message() + self._end_calls()
        self._done = True
        finish = self._finish or "stop"
        response = self._response(finish)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return out + self._emit(kind, response=response)

    def fail(self, exc: GatewayError) -> bytes:
        """End the stream with ``exc``: ``error``, then ``response.failed`` once it started."""
        self._done = True
        self.error = exc
        out = responses_stream_error(exc, self._seq)
        self._seq += 1
        if self._id is None:
            return out
        response = self._response()
        ended = [item for item in self._output if item["status"] != "in_progress"]
        code = _FAILED_CODE.get(exc.kind, "server_error")
        response.update(status="failed", output=ended, error={"code": code, "message": exc.message})
        return out + self._emit("response.failed", response=response)


class ChainedStream:
    """Two stream translators in a row: ``first``'s output is ``second``'s input.

    Token counts are ``first``'s: it reads the provider's own usage.
    """

    def __init__(self, first: StreamTranslator, second: ChatToResponsesStream) -> None:
        self._first = first
        self._second = second
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.error: GatewayError | None = None
        """The error that ended the stream, as either translator saw it."""

    def feed(self, chunk: bytes) -> bytes:
        """Translate upstream bytes (any chunking); may return ``b""``."""
        out = self._second.feed(self._first.feed(chunk))
        self._count()
        return out

    def close(self) -> bytes:
        """The upstream ended: what both translators still owe, once."""
        out = self._second.feed(self._first.close()) + self._second.close()
        self._count()
        return out

    def fail(self, exc: GatewayError) -> bytes:
        """End the stream with ``exc``, numbered after what ``second`` sent."""
        out = self._second.fail(exc)
        self._count()
        return out

    def _count(self) -> None:
        self.input_tokens = self._first.input_tokens
        self.output_tokens = self._first.output_tokens
        self.error = self._first.error or self._second.error
