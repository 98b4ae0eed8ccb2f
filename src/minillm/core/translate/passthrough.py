"""Same-format streams: forward upstream SSE bytes untouched, event-aligned.

No parsing on the hot path: bytes are forwarded up to the last event
boundary (a blank line) seen so far and the partial tail is held back, so
that an error event appended after an upstream failure never lands in the
middle of an event.  Only events containing ``"usage"`` are decoded, to pick
up the token counts (a Responses stream has them in ``response.completed``);
with ``drop_usage_chunk`` the OpenAI usage-only chunk (``"choices": []``),
which the gateway asked for on the client's behalf, is not forwarded.  An
upstream error event (Anthropic ``event: error``, OpenAI ``data: {"error": ...}``)
is forwarded as it is and kept as ``.error``.

Given its API ``fmt``, the stream also checks that it finished: an Anthropic
stream must carry ``message_stop``, an OpenAI one a ``finish_reason`` or
``[DONE]`` (servers that omit ``[DONE]`` still finish), a Responses one
(:class:`ResponsesPassthroughStream`) ``response.completed``, ``.incomplete``
or ``.failed``.  One that did not was
cut short, and :meth:`~PassthroughStream.close` appends an error event (kept
as ``.error``) so that the client does not take it for a whole answer.
"""

from __future__ import annotations

import re

import orjson

from minillm.core.errors import GatewayError, UpstreamProtocolError, WireFormat
from minillm.core.tokens import Tokens, tokens_from_usage
from minillm.core.translate._responses_stream import responses_stream_error
from minillm.core.translate._stream_out import stream_cut, stream_error
from minillm.core.translate.upstream_errors import stream_upstream_error

__all__ = ["PassthroughStream", "ResponsesPassthroughStream"]

_BOUNDARIES = (b"\n\n", b"\r\n\r\n", b"\r\r")
_EVENT_SPLIT = re.compile(rb"(\r\n\r\n|\n\n|\r\r)")
_DATA_LINE = re.compile(rb"^data:[ ]?(.*)$", re.MULTILINE)
# A usage *object*: OpenAI sends ``"usage":null`` in every chunk once usage is asked for.
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_ERROR_EVENT = re.compile(rb'^(?:event:[ ]?error\s|data:[ ]?\{\s*"error"\s*:)', re.MULTILINE)
# What shows that a stream finished (a quote inside a JSON string is escaped: no false match):
# patterns, each after a literal that all its matches contain.  The literal is looked for
# first: on a chunk that does not finish the stream, a substring search is several times
# cheaper than the pattern (an OpenAI chunk: 0.5 us rather than 2 us, in every chunk).
_Finish = tuple[tuple[bytes, re.Pattern[bytes]], ...]
_FINISHED: dict[WireFormat, _Finish] = {
    "anthropic": ((b"message_stop", re.compile(rb"^event:[ ]?message_stop\s", re.MULTILINE)),),
    "openai": (
        (b'"finish_reason"', re.compile(rb'"finish_reason"\s*:\s*"')),
        (b"[DONE]", re.compile(rb"^data:[ ]?\[DONE\]", re.MULTILINE)),
    ),
}


class PassthroughStream:
    """A :class:`~minillm.core.translate.streams.StreamTranslator` that copies bytes."""

    def __init__(
        self,
        max_pending: int = 1 << 20,
        *,
        drop_usage_chunk: bool = False,
        fmt: WireFormat | None = None,
    ) -> None:
        self._pending = b""
        self._fmt = fmt
        self._finished = _FINISHED[fmt] if fmt is not None else None  # None once finished
        self._max_pending = max_pending
        self._drop_usage_chunk = drop_usage_chunk
        self.tokens = Tokens()
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.error: GatewayError | None = None
        """The upstream error event the stream carried, or the cut, if any."""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        end = -1
        for sep in _BOUNDARIES:
            at = data.rfind(sep)
            if at >= 0 and at + len(sep) > end:
                end = at + len(sep)
        if end < 0:
            if len(data) > self._max_pending:
                raise UpstreamProtocolError("SSE event too long")
            self._pending = data
            return b""
        self._pending = data[end:]
        return self._inspect(data[:end])

    def close(self) -> bytes:
        """Flush a final event the upstream did not terminate with a blank line;
        end a stream that was cut short with an error event."""
        tail, self._pending = self._pending, b""
        out = self._inspect(tail + b"\n\n") if tail.strip() else b""
        if self._finished is None or self.error is not None:
            return out
        self.error = stream_cut(started=True)
        return out + self._end(self.error)

    def _end(self, exc: GatewayError) -> bytes:
        """The error event that ends the stream (only streams with a ``fmt`` are checked)."""
        assert self._fmt is not None
        return stream_error(self._fmt, exc)

    def _inspect(self, out: bytes) -> bytes:
        """Whole events on their way out: note an error event and the finish, record usage."""
        if self._finished is not None and _finishes(out, self._finished):
            self._finished = None
        if b"error" in out and (found := _ERROR_EVENT.search(out)) and self.error is None:
            payload = _payload(out[found.start() :])
            anthropic = isinstance(payload, dict) and payload.get("type") == "error"
            self.error = stream_upstream_error("anthropic" if anthropic else "openai", payload)
        return self._usage(out) if _USAGE.search(out) else out

    def _usage(self, data: bytes) -> bytes:
        """Record the usage of the events in ``data``; maybe drop the usage-only chunk."""
        parts = _EVENT_SPLIT.split(data)
        kept: list[bytes] = []
        for event, sep in zip(parts[::2], [*parts[1::2], b""], strict=True):
            if _USAGE.search(event) and self._record(event):
                continue
            kept.append(event + sep)
        self.input_tokens, self.output_tokens = self.tokens.input, self.tokens.output
        return b"".join(kept)

    def _record(self, event: bytes) -> bool:
        """Take the event's usage; True when the event is to be dropped."""
        payload = _payload(event)
        if not isinstance(payload, dict):
            return False
        usage = payload.get("usage")
        for wrapper in ("message", "response"):  # Anthropic message_start; Responses events
            inner = payload.get(wrapper)
            if usage is None and isinstance(inner, dict):
                usage = inner.get("usage")
        self.tokens.update(tokens_from_usage(usage))
        return self._drop_usage_chunk and payload.get("choices") == []


class ResponsesPassthroughStream(PassthroughStream):
    """A Responses stream passed through: it finished when it carried ``response.completed``,
    ``.incomplete`` or ``.failed``; an error event of the gateway's own (a cut, a stall,
    shutdown) continues the upstream's ``sequence_number``s."""

    def __init__(self, max_pending: int = 1 << 20) -> None:
        super().__init__(max_pending)
        self._finished = _RESPONSES_FINISHED
        self._next_sequence = 0

    def _inspect(self, out: bytes) -> bytes:
        at = out.rfind(b'"sequence_number"')
        if at >= 0 and (found := _SEQUENCE.match(out, at)):
            self._next_sequence = int(found.group(1)) + 1
        return super()._inspect(out)

    def fail(self, exc: GatewayError) -> bytes:
        """The error event that ends the stream with ``exc``, numbered after the last event."""
        return responses_stream_error(exc, self._next_sequence)

    _end = fail


_RESPONSES_FINISHED: _Finish = (
    (
        b"response.",
        re.compile(
            rb"^event:[ ]?response\.(?:completed|incomplete|failed)\s"
            rb'|"type"\s*:\s*"response\.(?:completed|incomplete|failed)"',
            re.MULTILINE,
        ),
    ),
)
_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(\d+)')


def _finishes(out: bytes, marks: _Finish) -> bool:
    return any(literal in out and pattern.search(out) for literal, pattern in marks)


def _payload(event: bytes) -> object:
    """The JSON of the first ``data:`` line in ``event`` (None if there is none or it is bad)."""
    match = _DATA_LINE.search(event)
    try:
        return orjson.loads(match.group(1)) if match else None
    except orjson.JSONDecodeError:
        return None
