"""Anthropic Messages request -> OpenAI Chat Completions request.

* ``system`` (string or text blocks, joined with a blank line) -> a leading
  ``system`` message;
* user content: ``text`` -> text part (a lone text block becomes a plain
  string); ``image`` base64 -> ``data:`` URL, url -> URL; each ``tool_result``
  -> a ``role: tool`` message placed where the user turn was, the turn's other
  blocks following as one user message.  A tool result's content (string or
  text blocks, joined with a blank line) is prefixed with ``"Error: "`` when
  ``is_error`` is true; images inside tool results are rejected (OpenAI tool
  messages carry text only);
* assistant content: text blocks joined -> ``content`` (``None`` when there is
  none but tool calls), ``tool_use`` -> ``tool_calls`` with ``arguments`` = JSON
  of ``input``; ``thinking`` / ``redacted_thinking`` blocks are dropped;
* ``tools`` -> function tools (server tools such as ``web_search_*`` are
  rejected); ``tool_choice`` auto/any/tool/none -> auto/required/named/none,
  ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``;
* ``max_tokens`` -> ``max_tokens`` by default: every OpenAI-compatible server
  (vLLM, llama.cpp, Ollama, TGI, ...) accepts it, while
  ``max_completion_tokens`` is newer; pass
  ``max_tokens_key="max_completion_tokens"`` for OpenAI reasoning models, which
  reject ``max_tokens``;
* ``stop_sequences`` -> ``stop``; ``temperature`` (0..1 fits OpenAI's 0..2),
  ``top_p``; ``metadata.user_id`` -> ``user``; ``stream: true`` -> ``stream`` plus
  ``stream_options.include_usage`` so the usage can be reported back;
* dropped: ``top_k`` (no OpenAI equivalent), ``thinking`` (reasoning is not
  requested), ``cache_control`` everywhere, ``service_tier``, ``container``,
  ``inference_geo``, ``speed``, ``output_config`` without ``format``, and
  unknown keys; rejected: ``output_config.format``, ``mcp_servers``, ``document``
  / ``search_result`` / server-tool blocks.
"""

from __future__ import annotations

from typing import Any, Literal

from minillm.translate._common import array_of, bad, dumps_arguments, text_of

__all__ = ["anthropic_to_openai_request"]


def anthropic_to_openai_request(
    body: dict[str, Any],
    *,
    model: str,
    max_tokens_key: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
) -> dict[str, Any]:
    """An OpenAI chat request equivalent to Anthropic Messages ``body``."""
    if not isinstance(body, dict):
        raise bad("body", "must be a JSON object")
    if body.get("mcp_servers"):
        raise bad("mcp_servers", "not supported by this model's provider")
    config = body.get("output_config")
    if isinstance(config, dict) and config.get("format") is not None:
        raise bad("output_config.format", "not supported by this model's provider")
    messages: list[dict[str, Any]] = []
    if system := text_of(body.get("system") or "", "system"):
        messages.append({"role": "system", "content": system})
    messages += _messages(body.get("messages"))
    out: dict[str, Any] = {"model": model, "messages": messages}
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise bad("max_tokens", "must be a positive integer")
    out[max_tokens_key] = max_tokens
    if (stop := body.get("stop_sequences")) is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad("stop_sequences", "must be an array of strings")
        out["stop"] = stop
    for key in ("temperature", "top_p"):
        if (value := body.get(key)) is not None:
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
                raise bad(key, "must be a number between 0 and 1")
            out[key] = value
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(user := metadata.get("user_id"), str):
        out["user"] = user
    if tools := _tools(body.get("tools")):
        out["tools"] = tools
        out.update(_tool_choice(body.get("tool_choice")))
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _messages(messages: object) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "must be a non-empty array")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise bad(path, "must be an object")
        role, content = msg.get("role"), msg.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        elif not isinstance(content, list):
            raise bad(f"{path}.content", "must be a string or an array of content blocks")
        if role == "user":
            out += _user(content, f"{path}.content")
        elif role == "assistant":
            out.append(_assistant(content, f"{path}.content"))
        else:
            raise bad(f"{path}.role", "must be 'user' or 'assistant'")
    return out


def _user(blocks: list[Any], path: str) -> list[dict[str, Any]]:
    """Tool messages for the turn's tool results, then one user message."""
    tool_msgs: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        kind = _kind(block, f"{path}[{i}]")
        if kind == "tool_result":
            tool_msgs.append(_tool_message(block, f"{path}[{i}]"))
        elif kind == "text":
            parts.append({"type": "text", "text": _text(block, f"{path}[{i}]")})
        elif kind == "image":
            url = _image_url(block.get("source"), f"{path}[{i}].source")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise bad(f"{path}[{i}].type", f"unsupported content block type {kind!r}")
    if not parts:
        return tool_msgs
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*tool_msgs, {"role": "user", "content": parts[0]["text"]}]
    return [*tool_msgs, {"role": "user", "content": parts}]


def _assistant(blocks: list[Any], path: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        kind = _kind(block, f"{path}[{i}]")
        if kind == "text":
            texts.append(_text(block, f"{path}[{i}]"))
        elif kind == "tool_use":
            calls.append(_tool_call(block, f"{path}[{i}]"))
        elif kind not in ("thinking", "redacted_thinking"):
            raise bad(f"{path}[{i}].type", f"unsupported content block type {kind!r}")
    text = "".join(texts)
    msg: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _kind(block: object, path: str) -> object:
    if not isinstance(block, dict):
        raise bad(path, "must be an object")
    return block.get("type")


def _text(block: dict[str, Any], path: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise bad(f"{path}.text", "must be a string")
    return text


def _image_url(source: object, path: str) -> str:
    if isinstance(source, dict):
        if source.get("type") == "url" and isinstance(url := source.get("url"), str):
            return url
        media, data = source.get("media_type"), source.get("data")
        if source.get("type") == "base64" and isinstance(media, str) and isinstance(data, str):
            return f"data:{media};base64,{data}"
    raise bad(path, "must be a base64 or url image source")


def _tool_call(block: dict[str, Any], path: str) -> dict[str, Any]:
    call_id, name, args = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise bad(path, "tool_use blocks need a string id and name")
    if not isinstance(args, dict):
        raise bad(f"{path}.input", "must be an object")
    fn = {"name": name, "arguments": dumps_arguments(args)}
    return {"id": call_id, "type": "function", "function": fn}


def _tool_message(block: dict[str, Any], path: str) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise bad(f"{path}.tool_use_id", "must be a string")
    content = text_of(block.get("content") or "", f"{path}.content")
    if block.get("is_error"):
        content = f"Error: {content}"
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _tools(tools: object) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(array_of(tools, "tools")):
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
            raise bad(f"tools[{i}]", "only custom (client) tools are supported")
        if not isinstance(tool.get("name"), str):
            raise bad(f"tools[{i}].name", "must be a string")
        fn: dict[str, Any] = {"name": tool["name"]}
        if isinstance(description := tool.get("description"), str):
            fn["description"] = description
        fn["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
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
