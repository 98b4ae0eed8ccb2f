"""The OpenAI Responses API, translated to and from Chat Completions (sans-I/O).

A Responses request becomes a Chat Completions request
(:func:`responses_to_chat_request`), sent as it is to an OpenAI-compatible
provider without the Responses API, or through
:func:`~minillm.translate.openai_to_anthropic_request` to an Anthropic-format
one.  The reply comes back the same way: a ``chat.completion`` (perhaps made
by :func:`~minillm.translate.anthropic_to_openai_response`) becomes a
``response`` object (:func:`chat_to_responses_response`); a chunk stream
becomes the Responses event stream (:class:`ChatToResponsesStream`, chained
after :class:`~minillm.translate.AnthropicToOpenAIStream` with
:class:`ChainedStream` for Anthropic providers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ResponsesPlan", "chat_to_responses_response", "responses_to_chat_request"]


@dataclass(frozen=True, slots=True)
class ResponsesPlan:
    """A Responses request translated to Chat Completions, and what the reply needs."""

    chat: dict[str, Any]
    """The Chat Completions request body (``model`` is the target model; a stream
    asks for ``stream_options.include_usage``)."""
    dropped_tools: tuple[str, ...]
    """Types of the built-in tools removed (for ``x-minillm-dropped-tools``)."""
    tool_names: Mapping[str, tuple[str | None, str]]
    """Chat function name -> (namespace or ``None``, name as the client declared it)."""
    custom_tools: frozenset[str]
    """Chat function names that stand for ``type: "custom"`` tools (one string
    parameter ``input``)."""
    request: Mapping[str, Any]
    """The client's Responses body, echoed in the response object."""


def responses_to_chat_request(body: dict[str, Any], *, model: str) -> ResponsesPlan:
    """Translate Responses request ``body`` for target ``model``.

    Raises :class:`~minillm.errors.BadRequest` naming the offending field.
    """
    raise NotImplementedError


def chat_to_responses_response(chat: dict[str, Any], plan: ResponsesPlan) -> dict[str, Any]:
    """The Responses ``response`` object for a ``chat.completion`` body.

    Raises :class:`~minillm.errors.UpstreamProtocolError` when ``chat`` is not
    shaped like a chat completion.
    """
    raise NotImplementedError
