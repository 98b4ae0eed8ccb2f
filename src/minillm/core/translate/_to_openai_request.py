"""Anthropic Messages request -> OpenAI Chat Completions request.

Messages and content blocks are mapped by :mod:`._to_openai_messages`; the
README's "Translation" section has the field-by-field table.  Here:

* ``max_tokens`` -> ``max_tokens``, or ``max_completion_tokens`` for a
  reasoning model (OpenAI's reject ``max_tokens``; every OpenAI-compatible
  server accepts ``max_tokens``, while ``max_completion_tokens`` is newer);
* ``stop_sequences`` -> ``stop``; ``temperature`` (0..1 fits OpenAI's 0..2) and
  ``top_p``, dropped for a reasoning model (which rejects them);
* ``output_config.effort`` -> ``reasoning_effort`` for a reasoning model
  (``xhigh`` / ``max`` -> ``high``, the highest every reasoning model takes),
  dropped otherwise; ``output_config.format`` (or the beta's ``output_format``,
  a JSON schema) -> a strict ``response_format`` of type ``json_schema``;
* ``metadata.user_id`` -> ``user``; longer than OpenAI's 64 characters (Claude
  Code sends a JSON object) -> its SHA-256 hex digest, still one stable id;
* ``stream: true`` -> ``stream`` plus ``stream_options.include_usage``;
* custom ``tools`` -> function tools (``strict`` kept; ``cache_control``,
  ``defer_loading``, ``eager_input_streaming``, ``input_examples`` and
  ``allowed_callers`` dropped); a deferred tool is sent only once a
  ``tool_reference`` block loaded it, as Anthropic would; Anthropic-defined
  tools (``web_search_*``, ``bash_*``, ``text_editor_*``, ``code_execution_*``,
  ...) are refused; ``tool_choice`` auto/any/tool/none ->
  auto/required/named/none, ``disable_parallel_tool_use`` ->
  ``parallel_tool_calls: false``;
* dropped: ``top_k``, ``thinking``, ``context_management``, ``cache_control``,
  ``container``, ``service_tier``, ``inference_geo``, ``speed``,
  ``diagnostics``, and unknown keys; refused: ``mcp_servers``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from minillm.core.translate._common import array_of, bad
from minillm.core.translate._to_openai_messages import Conversation

__all__ = ["anthropic_to_openai_request"]

MAX_USER_LENGTH = 64  # OpenAI's limit for ``user``
_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def anthropic_to_openai_request(
    body: dict[str, Any], *, model: str, reasoning: bool = False
) -> dict[str, Any]:
    """An OpenAI chat request equivalent to Anthropic Messages ``body``.

    ``reasoning`` says the target is a reasoning model (configured per provider
    with ``reasoning_models``): it takes ``max_completion_tokens`` and
    ``reasoning_effort``, and no sampling parameters.
    """
    if not isinstance(body, dict):
        raise bad("body", "must be a JSON object")
    if body.get("mcp_servers"):
        raise bad("mcp_servers", "not supported by this model's provider")
    conv = Conversation.of(body.get("system"), body.get("messages"))
    out: dict[str, Any] = {"model": model, "messages": conv.messages}
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise bad("max_tokens", "must be a positive integer")
    out["max_completion_tokens" if reasoning else "max_tokens"] = max_tokens
    if (stop := body.get("stop_sequences")) is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad("stop_sequences", "must be an array of strings")
        out["stop"] = stop
    for key in ("temperature", "top_p"):
        if (value := body.get(key)) is not None:
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                raise bad(key, "must be a number between 0 and 1")
            if not reasoning:
                out[key] = value
    config = body.get("output_config")
    if (legacy := body.get("output_format")) is not None:  # the beta's first spelling
        config = {**(config if isinstance(config, dict) else {}), "format": legacy}
    out.update(_output_config(config, reasoning))
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(user := metadata.get("user_id"), str) and user:
        too_long = len(user) > MAX_USER_LENGTH
        out["user"] = hashlib.sha256(user.encode()).hexdigest() if too_long else user
    choice = body.get("tool_choice")
    forced = choice.get("name") if isinstance(choice, dict) else None
    if tools := _tools(body.get("tools"), {*conv.referenced_tools, forced}):
        out["tools"] = tools
        out.update(_tool_choice(choice))
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _output_config(config: object, reasoning: bool) -> dict[str, Any]:
    """``reasoning_effort`` / ``response_format`` entries for ``output_config``."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise bad("output_config", "must be an object")
    out: dict[str, Any] = {}
    effort = config.get("effort")
    if effort is not None and effort not in _EFFORT:
        raise bad("output_config.effort", f"must be one of {', '.join(_EFFORT)}")
    if effort is not None and reasoning:
        out["reasoning_effort"] = _EFFORT[effort]
    fmt = config.get("format")
    if fmt is not None:
        schema = fmt.get("schema") if isinstance(fmt, dict) else None
        if (
            not isinstance(fmt, dict)
            or fmt.get("type") != "json_schema"
            or not isinstance(schema, dict)
        ):
            raise bad("output_config.format", "must be a json_schema format with a schema")
        spec = {"name": "output", "schema": schema, "strict": True}
        out["response_format"] = {"type": "json_schema", "json_schema": spec}
    return out


def _tools(tools: object, loaded: set[object]) -> list[dict[str, Any]]:
    """Function tools; deferred ones only once ``loaded`` by a tool reference."""
    out = []
    for i, tool in enumerate(array_of(tools, "tools")):
        if not isinstance(tool, dict):
            raise bad(f"tools[{i}]", "must be an object")
        if (kind := tool.get("type")) not in (None, "custom"):
            raise bad(
                f"tools[{i}]",
                f"Anthropic-defined tool type {kind!r} is not supported by this model's provider",
            )
        if not isinstance(name := tool.get("name"), str):
            raise bad(f"tools[{i}].name", "must be a string")
        if tool.get("defer_loading") and name not in loaded:
            continue
        fn: dict[str, Any] = {"name": name}
        if isinstance(description := tool.get("description"), str):
            fn["description"] = description
        fn["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        if isinstance(strict := tool.get("strict"), bool):
            fn["strict"] = strict
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: object) -> dict[str, Any]:
    """``tool_choice`` / ``parallel_tool_calls`` entries for the OpenAI body."""
    if choice is None:
        return {}
    if not isinstance(choice, dict):
        raise bad("tool_choice", "must be an object")
    kind, name = choice.get("type"), choice.get("name")
    if kind in ("auto", "any", "none"):
        out: dict[str, Any] = {"tool_choice": {"auto": "auto", "any": "required"}.get(kind, "none")}
    elif kind == "tool" and isinstance(name, str):
        out = {"tool_choice": {"type": "function", "function": {"name": name}}}
    else:
        raise bad("tool_choice", "must be an auto, any, tool (with a name) or none choice")
    if choice.get("disable_parallel_tool_use") and kind != "none":
        out["parallel_tool_calls"] = False
    return out
