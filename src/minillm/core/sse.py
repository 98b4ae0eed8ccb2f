"""Server-sent events: a sans-I/O decoder (bytes in, events out) and an encoder.

The decoder follows the WHATWG event-stream rules that matter to LLM APIs:

* lines end with ``\\r\\n``, ``\\r`` or ``\\n`` (a ``\\r\\n`` split across two chunks
  counts once);
* ``:`` starts a comment; ``field: value`` drops one leading space of the value;
* ``data`` lines accumulate (joined with ``\\n``), ``event`` sets the type, a
  blank line dispatches; an event without any ``data`` line is not dispatched;
* ``id`` and ``retry`` are parsed away and ignored (the gateway never reconnects);
* a leading UTF-8 BOM is skipped; invalid UTF-8 is replaced, never fatal.

It is built for the hot path: each ``feed`` joins and decodes whole lines at
once and splits with ``bytes.split``; a partial trailing line is kept as a list
of pieces so a long line arriving in tiny chunks costs linear time.
"""

from __future__ import annotations

from dataclasses import dataclass

from minillm.core.errors import UpstreamProtocolError

__all__ = ["SSEDecoder", "SSEEvent", "encode_event"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event."""

    event: str | None
    """The ``event:`` field, ``None`` when absent."""
    data: str
    """The ``data:`` lines joined with ``\\n``."""


class SSEDecoder:
    """Incremental event-stream decoder: ``feed`` any chunking, then ``close``."""

    def __init__(self, max_line: int = 1 << 20) -> None:
        self._max_line = max_line
        self._partial: list[bytes] = []  # pieces of the unfinished last line
        self._partial_len = 0
        self._skip_lf = False  # the previous chunk ended with "\r": drop a leading "\n"
        self._started = False  # a BOM is only skipped at the very start
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; return the events it completes.

        Raises :class:`~minillm.core.errors.UpstreamProtocolError` when a line is
        longer than ``max_line`` bytes.
        """
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if cut < 0:  # no line end: just remember the piece
            self._partial.append(chunk)
            self._partial_len += len(chunk)
            self._check_partial()
            return []
        head, tail = chunk[: cut + 1], chunk[cut + 1 :]
        if self._partial:
            head = b"".join(self._partial) + head
            self._partial.clear()
        self._partial_len = 0
        if tail:
            self._partial.append(tail)
            self._partial_len = len(tail)
            self._check_partial()
        if b"\r" in head:
            self._skip_lf = head.endswith(b"\r")
            head = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if len(head) > self._max_line:
            self._check_lines(head)
        lines = head[:-1].decode("utf-8", "replace").split("\n")
        return self._on_lines(lines)

    def close(self) -> list[SSEEvent]:
        """End of stream: process an unterminated last line and dispatch a
        pending event even though it lacked its closing blank line."""
        lines = [b"".join(self._partial).decode("utf-8", "replace")] if self._partial else []
        self._partial.clear()
        self._partial_len = 0
        return self._on_lines([*lines, ""])

    def _check_partial(self) -> None:
        if self._partial_len > self._max_line:
            raise UpstreamProtocolError("SSE line too long")

    def _check_lines(self, head: bytes) -> None:
        if any(len(line) > self._max_line for line in head.split(b"\n")):
            raise UpstreamProtocolError("SSE line too long")

    def _on_lines(self, lines: list[str]) -> list[SSEEvent]:
        if not self._started and lines:
            self._started = True
            lines[0] = lines[0].removeprefix("\ufeff")
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(SSEEvent(self._event, "\n".join(self._data)))
                    self._data = []
                self._event = None
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
            # comments (empty name), "id", "retry" and unknown fields are ignored
        return events


def encode_event(data: str | bytes, event: str | None = None) -> bytes:
    """One event in wire form: ``event: x\\ndata: ...\\n\\n``.

    Multi-line ``data`` (any of ``\\r\\n``, ``\\r``, ``\\n``) becomes several
    ``data:`` lines, which a decoder joins back with ``\\n``.
    """
    raw = data.encode() if isinstance(data, str) else data
    if b"\n" in raw or b"\r" in raw:
        lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        body = b"".join([b"data: " + line + b"\n" for line in lines])
    else:
        body = b"data: " + raw + b"\n"
    if event is None:
        return body + b"\n"
    return b"event: " + event.encode() + b"\n" + body + b"\n"
