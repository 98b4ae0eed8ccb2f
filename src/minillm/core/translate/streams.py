"""Stream translation between the two APIs' server-sent event streams.

A translator is a sans-I/O object: raw upstream SSE bytes go into
:meth:`~StreamTranslator.feed` in whatever chunks the network delivers, and
downstream SSE bytes come out, ready to write.  When the upstream body ends,
:meth:`~StreamTranslator.close` returns the terminal events still owed (once).
Each direction is documented in its module:
:mod:`minillm.core.translate._to_openai_stream` (Anthropic -> OpenAI),
:mod:`minillm.core.translate._to_anthropic_stream` (OpenAI -> Anthropic) and
:mod:`minillm.core.translate._responses_stream` (OpenAI chat -> OpenAI Responses).

``feed`` raises :class:`~minillm.core.errors.UpstreamProtocolError` on malformed
upstream data (bad JSON, an SSE line over 1 MiB, events out of order); the
caller should then end the stream with ``stream_error(fmt, exc)``.  An error
*event* from the upstream is translated by the translator itself, which then
ignores further input and exposes the error as ``.error`` (the relay counts the
stream as failed with its status); so is an upstream that ends before its
finish (cut short), in :meth:`close`.  A translator that numbers its events
(Responses) also has ``fail(exc)``, with which the relay ends the stream with
the gateway's own errors.
"""

from __future__ import annotations

from typing import Protocol

from minillm.core.errors import GatewayError
from minillm.core.translate._stream_out import stream_error
from minillm.core.translate._to_anthropic_stream import OpenAIToAnthropicStream
from minillm.core.translate._to_openai_stream import AnthropicToOpenAIStream

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "StreamTranslator",
    "stream_error",
]


class StreamTranslator(Protocol):
    """What the relay needs from a stream translator."""

    input_tokens: int | None
    """Input tokens reported so far (``None`` until the upstream reports them)."""
    output_tokens: int | None
    error: GatewayError | None
    """The error event that ended the stream, if any (the stream then failed): the
    upstream's own, or the translator's when the upstream ended before its finish."""

    def feed(self, chunk: bytes) -> bytes:
        """Upstream SSE bytes (any chunking) -> downstream SSE bytes (maybe ``b""``)."""
        ...

    def close(self) -> bytes:
        """Upstream ended: the terminal events still owed, exactly once."""
        ...
