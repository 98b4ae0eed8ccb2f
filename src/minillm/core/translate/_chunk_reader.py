"""The input side shared by the translators that read OpenAI ``chat.completion.chunk`` SSE."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from minillm.core.errors import GatewayError, UpstreamProtocolError
from minillm.core.sse import SSEDecoder, SSEEvent
from minillm.core.translate._common import loads_upstream
from minillm.core.translate._stream_out import stream_cut

__all__ = ["ChatChunkReader"]


class ChatChunkReader(ABC):
    """Upstream chunk SSE bytes (any chunking) -> parsed chunks, handed to the subclass.

    A subclass translates one chunk in :meth:`_on_chunk`, sends what it owes at
    the end in :meth:`_end` (on ``[DONE]``, or on :meth:`close` when the upstream
    ended without it) and says in :meth:`_ended` when its output is over; after
    that, input is ignored.  A stream that ends with neither ``[DONE]`` nor a
    ``finish_reason`` (kept by the subclass in ``_finish``) was cut short: it
    ends with :meth:`fail` instead.  (Some servers omit ``[DONE]`` or the usage
    chunk; a finish reason is enough.)  A chunk that is not a JSON object raises
    :class:`~minillm.core.errors.UpstreamProtocolError`.
    """

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._finish: object = None  # choices[0].finish_reason, once seen

    def feed(self, chunk: bytes) -> bytes:
        """Translate upstream bytes (any chunking); may return ``b""``."""
        return b"" if self._ended() else self._on_events(self._decoder.feed(chunk))

    def close(self) -> bytes:
        """The upstream ended: flush it and send the closing events still owed, once."""
        if self._ended():
            return b""
        out = self._on_events(self._decoder.close())
        if self._ended():
            return out
        if self._finish is None:
            return out + self.fail(stream_cut(started=self._started()))
        return out + self._end()

    def _on_events(self, events: list[SSEEvent]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if self._ended():
                break
            if event.data.startswith("[DONE]"):
                out.append(self._end())
                continue
            data = loads_upstream(event.data)
            if not isinstance(data, dict):
                raise UpstreamProtocolError("Provider sent a chunk that is not an object")
            out.append(self._on_chunk(data))
        return b"".join(out)

    @abstractmethod
    def _ended(self) -> bool: ...

    @abstractmethod
    def _started(self) -> bool: ...

    @abstractmethod
    def fail(self, exc: GatewayError) -> bytes:
        """End the output with ``exc`` as its error event (kept as ``.error``)."""

    @abstractmethod
    def _on_chunk(self, data: dict[str, Any]) -> bytes: ...

    @abstractmethod
    def _end(self) -> bytes: ...
