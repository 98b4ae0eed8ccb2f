"""Response translation: Anthropic Messages <-> OpenAI Chat Completions.

The input is a provider's successful response body; a body that is not shaped
like one raises :class:`~minillm.core.errors.UpstreamProtocolError`.

Anthropic -> OpenAI (:func:`anthropic_to_openai_response`)
    a ``chat.completion`` with id ``"chatcmpl-" + message id`` and the
    message's ``model``; text blocks joined into ``content`` (``None`` when the
    reply is only tool calls); ``tool_use`` -> ``tool_calls`` (``arguments`` =
    JSON of ``input``); ``thinking`` / ``redacted_thinking`` and server-tool
    blocks are skipped; ``stop_reason`` end_turn/stop_sequence/pause_turn ->
    ``stop``, max_tokens/model_context_window_exceeded -> ``length``, tool_use ->
    ``tool_calls``, refusal -> ``content_filter``; usage: prompt tokens =
    input + cache read + cache creation, cache reads also in
    ``prompt_tokens_details.cached_tokens``.

OpenAI -> Anthropic (:func:`openai_to_anthropic_response`)
    a ``message`` with id ``"msg_" + completion id``; ``content`` (or a
    ``refusal``) -> a text block when non-empty, then one ``tool_use`` block per
    tool call.  ``arguments`` that are not a JSON object are kept as
    ``{"_raw": "<arguments>"}`` (``""`` gives ``{}``) so the reply still
    validates; ``finish_reason`` stop -> end_turn, length -> max_tokens,
    tool_calls/function_call -> tool_use, content_filter -> refusal, and
    ``tool_use`` for a plain stop with tool calls (some servers say ``stop``);
    ``stop_sequence`` is always null (OpenAI does not say which one matched);
    usage: ``input_tokens`` = prompt - cached, cached -> ``cache_read_input_tokens``.
    Only ``choices[0]`` is read; ``reasoning_content`` (vLLM, DeepSeek) is dropped.
"""

from __future__ import annotations

import time
from typing import Any

from minillm.core.errors import UpstreamProtocolError
from minillm.core.translate._common import (
    anthropic_id,
    anthropic_usage,
    dumps_arguments,
    finish_reason,
    message_text,
    openai_id,
    openai_usage,
    stop_reason,
    tool_input,
)

__all__ = ["anthropic_to_openai_response", "openai_to_anthropic_response"]


def anthropic_to_openai_response(
    body: dict[str, Any], *, created: int | None = None
) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` for Anthropic message ``body``.

    ``created`` defaults to the current time.
    """
    blocks = body.get("content") if isinstance(body, dict) else None
    if not isinstance(blocks, list):
        raise UpstreamProtocolError("Provider response has no content array")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            fn = {"name": block.get("name", ""), "arguments": dumps_arguments(block.get("input"))}
            calls.append({"id": block.get("id", ""), "type": "function", "function": fn})
    text = "".join(texts)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": finish_reason(body.get("stop_reason")),
        "logprobs": None,
    }
    return {
        "id": openai_id(body.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": body.get("model", ""),
        "choices": [choice],
        "usage": openai_usage(body.get("usage")),
    }


def openai_to_anthropic_response(body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic ``message`` for OpenAI ``chat.completion`` ``body``."""
    choices = body.get("choices") if isinstance(body, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(first, dict) or not isinstance(message := first.get("message"), dict):
        raise UpstreamProtocolError("Provider response has no choices[0].message")
    content: list[dict[str, Any]] = []
    text = message_text(message.get("content")) or message_text(message.get("refusal"))
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") or []
    for i, call in enumerate(calls if isinstance(calls, list) else []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        content.append({
            "type": "tool_use",
            "id": call.get("id") or f"toolu_{i}",
            "name": fn.get("name") or "",
            "input": tool_input(fn.get("arguments")),
        })  # fmt: skip
    has_calls = any(block["type"] == "tool_use" for block in content)
    return {
        "id": anthropic_id(body.get("id")),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": content,
        "stop_reason": stop_reason(first.get("finish_reason"), tool_calls=has_calls),
        "stop_sequence": None,
        "usage": anthropic_usage(body.get("usage")),
    }
