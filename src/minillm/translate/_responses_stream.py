"""OpenAI ``chat.completion.chunk`` SSE -> OpenAI Responses SSE."""

from __future__ import annotations

from minillm.errors import GatewayError
from minillm.translate._responses_common import ResponsesPlan
from minillm.translate.streams import StreamTranslator

__all__ = ["ChainedStream", "ChatToResponsesStream", "responses_stream_error"]


class ChatToResponsesStream:
    """Upstream chat chunk SSE in (any chunking), Responses SSE out."""

    def __init__(self, plan: ResponsesPlan) -> None:
        self._plan = plan
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Translate upstream bytes (any chunking); may return ``b""``."""
        raise NotImplementedError

    def close(self) -> bytes:
        """The upstream ended: the terminal events still owed, once."""
        raise NotImplementedError


class ChainedStream:
    """Two stream translators in a row: ``first``'s output is ``second``'s input."""

    def __init__(self, first: StreamTranslator, second: StreamTranslator) -> None:
        self._first = first
        self._second = second
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        raise NotImplementedError


def responses_stream_error(exc: GatewayError, sequence_number: int = 0) -> bytes:
    """The ``error`` event that ends a Responses stream with ``exc``."""
    raise NotImplementedError
