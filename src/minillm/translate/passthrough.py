"""Same-format streams: forward upstream SSE bytes untouched, event-aligned.

No parsing on the hot path: bytes are forwarded up to the last event
boundary (a blank line) seen so far and the partial tail is held back, so
that an error event appended after an upstream failure never lands in the
middle of an event.
"""

from __future__ import annotations

from minillm.errors import UpstreamProtocolError

__all__ = ["PassthroughStream"]

_BOUNDARIES = (b"\n\n", b"\r\n\r\n", b"\r\r")


class PassthroughStream:
    """A :class:`~minillm.translate.streams.StreamTranslator` that copies bytes."""

    input_tokens: int | None = None
    output_tokens: int | None = None

    def __init__(self, max_pending: int = 1 << 20) -> None:
        self._pending = b""
        self._max_pending = max_pending

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
        return data[:end]

    def close(self) -> bytes:
        """Flush a final event the upstream did not terminate with a blank line."""
        tail, self._pending = self._pending, b""
        return tail + b"\n\n" if tail.strip() else b""
