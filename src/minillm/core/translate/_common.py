"""Small helpers shared by the request, response and stream translations."""

from __future__ import annotations

from typing import Any

import orjson

from minillm.core.errors import BadRequest, UpstreamProtocolError

# Anthropic stop_reason -> OpenAI finish_reason.
FINISH_REASON = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# OpenAI finish_reason -> Anthropic stop_reason.
STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason(stop_reason: object) -> str:
    """OpenAI ``finish_reason`` for an Anthropic ``stop_reason`` (unknown -> ``stop``)."""
    return FINISH_REASON.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason(finish: object, *, tool_calls: bool = False) -> str:
    """Anthropic ``stop_reason`` for an OpenAI ``finish_reason`` (unknown -> ``end_turn``).

    With ``tool_calls`` present, a plain stop becomes ``tool_use``: some
    OpenAI-compatible servers finish tool calls with ``stop``, and Anthropic
    clients loop on ``tool_use``.
    """
    reason = STOP_REASON.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    return "tool_use" if tool_calls and reason == "end_turn" else reason


def openai_id(anthropic_id: object) -> str:
    """The chat.completion id reported for an Anthropic message id."""
    return f"chatcmpl-{anthropic_id}" if anthropic_id else "chatcmpl-minillm"


def anthropic_id(openai_id: object) -> str:
    """The message id reported for an OpenAI chat.completion id."""
    return f"msg_{openai_id}" if openai_id else "msg_minillm"


def count(value: object) -> int:
    """A token count from JSON (missing, null or junk -> 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def openai_usage(usage: object) -> dict[str, Any]:
    """OpenAI ``usage`` for an Anthropic usage object.

    Prompt tokens include cache reads and cache writes (OpenAI has no separate
    fields); cache reads are also reported as ``prompt_tokens_details.cached_tokens``.
    """
    u = usage if isinstance(usage, dict) else {}
    cached = u.get("cache_read_input_tokens")
    prompt = count(u.get("input_tokens")) + count(cached)
    prompt += count(u.get("cache_creation_input_tokens"))
    completion = count(u.get("output_tokens"))
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": count(cached)}
    return out


def anthropic_usage(usage: object) -> dict[str, Any]:
    """Anthropic ``usage`` for an OpenAI usage object.

    ``input_tokens`` excludes cached tokens, which become ``cache_read_input_tokens``.
    """
    u = usage if isinstance(usage, dict) else {}
    details = u.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    out: dict[str, Any] = {
        "input_tokens": max(count(u.get("prompt_tokens")) - count(cached), 0),
        "output_tokens": count(u.get("completion_tokens")),
    }
    if cached is not None:
        out["cache_read_input_tokens"] = count(cached)
    return out


def dumps_arguments(value: object) -> str:
    """Tool input as the JSON string OpenAI puts in ``function.arguments``."""
    return orjson.dumps(value).decode()


def tool_input(arguments: object) -> dict[str, Any]:
    """Tool ``input`` for OpenAI ``arguments``: the parsed JSON object; ``{}`` for
    an empty or missing string; ``{"_raw": arguments}`` for anything else."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):  # some servers send an object, not a string
        return arguments
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"_raw": str(arguments)}


def message_text(value: object) -> str:
    """Chat message text: a string, or a list of text parts joined (some servers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def loads_upstream(data: str | bytes) -> Any:
    """Parse JSON sent by a provider; malformed -> UpstreamProtocolError."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError("Provider sent malformed JSON") from exc


def bad(path: str, problem: str) -> BadRequest:
    """A BadRequest whose message starts with the offending field's path."""
    return BadRequest(f"{path}: {problem}")


def array_of(value: object, path: str) -> list[Any]:
    """An optional JSON array field: ``None`` is empty, anything else but a list is a 400."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad(path, "must be an array")
    return value


def text_of(blocks: object, path: str) -> str:
    """Join a string or a list of text parts/blocks into one string."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise bad(path, "must be a string or an array of text parts")
    texts = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise bad(f"{path}[{i}]", "only text parts are supported here")
        text = block.get("text")
        if not isinstance(text, str):
            raise bad(f"{path}[{i}].text", "must be a string")
        texts.append(text)
    return "\n\n".join(texts)
