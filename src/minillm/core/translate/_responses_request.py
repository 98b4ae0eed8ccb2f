"""Responses request -> Chat Completions request; see :mod:`.responses_api`."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from minillm.core.translate._common import array_of, bad
from minillm.core.translate._responses_common import ResponsesPlan

__all__ = ["responses_to_chat_request"]

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_STATELESS = ("previous_response_id", "conversation", "prompt")
_DROPPED_ITEMS = frozenset({
    "reasoning", "web_search_call", "file_search_call", "image_generation_call",
    "code_interpreter_call",
})  # fmt: skip
_CALLS = ("function_call", "custom_tool_call")
_OUTPUTS = ("function_call_output", "custom_tool_call_output")


def responses_to_chat_request(
    body: dict[str, Any], *, model: str, reasoning: bool = False
) -> ResponsesPlan:
    """Translate Responses request ``body`` for target ``model``.

    ``reasoning`` says the target is a reasoning model: it takes
    ``max_completion_tokens`` and ``reasoning_effort``, and no sampling parameters.
    Raises :class:`~minillm.core.errors.BadRequest` naming the offending field.
    """
    if not isinstance(body, dict):
        raise bad("body", "must be a JSON object")
    _check_stateless(body)
    tools = _Tools(body.get("tools"))
    chat: dict[str, Any] = {"model": model, "messages": _messages(body, tools)}
    if (limit := body.get("max_output_tokens")) is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise bad("max_output_tokens", "must be a positive integer")
        chat["max_completion_tokens" if reasoning else "max_tokens"] = limit
    for key in ("temperature", "top_p"):
        if (value := body.get(key)) is not None and not reasoning:
            chat[key] = value
    if reasoning and (effort := _effort(body.get("reasoning"))) is not None:
        chat["reasoning_effort"] = effort
    if body.get("top_logprobs"):
        raise bad("top_logprobs", "not supported by this model's provider")
    if (fmt := _response_format(body.get("text"))) is not None:
        chat["response_format"] = fmt
    if tools.chat:
        chat["tools"] = tools.chat
        if (choice := tools.choice(body.get("tool_choice"))) is not None:
            chat["tool_choice"] = choice
        if isinstance(parallel := body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = parallel
    else:
        tools.choice(body.get("tool_choice"))  # a choice forcing a dropped tool is still a 400
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return ResponsesPlan(
        chat=chat,
        dropped_tools=tuple(tools.dropped),
        tool_names=tools.names,
        custom_tools=frozenset(tools.custom),
        request=body,
    )


def _check_stateless(body: dict[str, Any]) -> None:
    for key in _STATELESS:
        if body.get(key) is not None:
            raise bad(key, "needs stored responses, which this gateway does not keep")
    if body.get("background"):
        raise bad("background", "background responses are not supported by this gateway")


def _effort(reasoning: object) -> str | None:
    """``reasoning.effort``, passed on as ``reasoning_effort`` to a reasoning model."""
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    return effort if isinstance(effort, str) else None


def _response_format(text: object) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt, dict):
        keys = ("name", "schema", "strict", "description")
        return {"type": "json_schema", "json_schema": {k: fmt[k] for k in keys if k in fmt}}
    raise bad("text.format.type", "must be 'text', 'json_schema' or 'json_object'")


# --- tools ---------------------------------------------------------------------------


def flat_name(namespace: str | None, name: str) -> str:
    """A chat function name for a (namespaced) tool that fits ``^[a-zA-Z0-9_-]{1,64}$``:
    ``<namespace>__<name>`` when it fits, else a readable prefix and a hash."""
    candidate = f"{namespace}__{name}" if namespace is not None else name
    return candidate if _NAME.fullmatch(candidate) else _hashed(namespace, name)


def _hashed(namespace: str | None, name: str) -> str:
    candidate = f"{namespace}__{name}" if namespace is not None else name
    digest = hashlib.sha256(f"{namespace}\0{name}".encode()).hexdigest()[:10]
    return re.sub(r"[^a-zA-Z0-9_-]", "_", candidate)[:53] + "_" + digest


class _Tools:
    """The client's tools as chat function tools, and the names to map calls back."""

    def __init__(self, tools: object) -> None:
        self.chat: list[dict[str, Any]] = []
        self.dropped: list[str] = []
        self.names: dict[str, tuple[str | None, str]] = {}
        self.custom: set[str] = set()
        self._flat: dict[tuple[str | None, str], str] = {}
        for i, tool in enumerate(array_of(tools, "tools")):
            path = f"tools[{i}]"
            kind = tool.get("type") if isinstance(tool, dict) else None
            if not isinstance(kind, str):
                raise bad(f"{path}.type", "must be a string")
            if kind == "namespace":
                namespace = _string(tool.get("name"), f"{path}.name")
                for j, inner in enumerate(array_of(tool.get("tools"), f"{path}.tools")):
                    self._add(inner, f"{path}.tools[{j}]", namespace)
            elif kind in ("function", "custom"):
                self._add(tool, path, None)
            elif kind not in self.dropped:
                self.dropped.append(kind)

    def flat(self, namespace: str | None, name: str) -> str:
        """The chat name of a declared tool, or the default one for a tool the
        request does not declare (a call in the history)."""
        return self._flat.get((namespace, name)) or flat_name(namespace, name)

    def _add(self, tool: object, path: str, namespace: str | None) -> None:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or kind not in ("function", "custom"):
            raise bad(f"{path}.type", "must be 'function' or 'custom'")
        name = _string(tool.get("name"), f"{path}.name")
        if (namespace, name) in self._flat:
            raise bad(f"{path}.name", f"duplicate tool name {name!r}")
        flat = flat_name(namespace, name)
        if flat in self.names:
            flat = _hashed(namespace, name)
            if flat in self.names:
                raise bad(f"{path}.name", f"duplicate tool name {name!r}")
        self._flat[namespace, name], self.names[flat] = flat, (namespace, name)
        fn: dict[str, Any] = {"name": flat}
        if isinstance(description := tool.get("description"), str):
            fn["description"] = description
        if kind == "custom":
            self.custom.add(flat)
            fn["parameters"] = _custom_parameters(tool.get("format"))
        else:
            fn["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
            if isinstance(strict := tool.get("strict"), bool):
                fn["strict"] = strict
        self.chat.append({"type": "function", "function": fn})

    def choice(self, choice: object) -> object:
        """The chat ``tool_choice`` for a Responses one."""
        if choice is None or choice in ("auto", "none", "required"):
            return choice
        kind = choice.get("type") if isinstance(choice, dict) else None
        if not isinstance(choice, dict) or not isinstance(kind, str):
            raise bad("tool_choice", "must be 'auto', 'none', 'required' or an object")
        if kind in ("function", "custom"):
            name = _string(choice.get("name"), "tool_choice.name")
            namespace = choice.get("namespace")
            flat = self.flat(namespace if isinstance(namespace, str) else None, name)
            if flat not in self.names:
                raise bad("tool_choice.name", f"no tool named {name!r} in tools")
            return {"type": "function", "function": {"name": flat}}
        if kind == "allowed_tools":
            raise bad("tool_choice.type", "'allowed_tools' is not supported by this gateway")
        raise bad("tool_choice", f"forces the built-in tool {kind!r}, which this model cannot run")


def _custom_parameters(fmt: object) -> dict[str, Any]:
    """One string parameter ``input`` that carries a custom tool's raw input."""
    described: dict[str, Any] = {"type": "string"}
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        syntax, definition = fmt.get("syntax"), fmt.get("definition")
        if isinstance(definition, str):
            described["description"] = f"Raw input following this {syntax} grammar:\n{definition}"
    return {
        "type": "object", "properties": {"input": described}, "required": ["input"],
        "additionalProperties": False,
    }  # fmt: skip


# --- input ---------------------------------------------------------------------------


def _messages(body: dict[str, Any], tools: _Tools) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if (instructions := body.get("instructions")) is not None:
        if not isinstance(instructions, str):
            raise bad("instructions", "must be a string")
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise bad("input", "must be a non-empty string or array of items")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad(f"input[{i}]", "must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, f"input[{i}]"))
        elif kind in _CALLS:
            _add_call(messages, _tool_call(item, f"input[{i}]", tools))
        elif kind in _OUTPUTS:
            messages.append(_tool_output(item, f"input[{i}]"))
        elif kind == "item_reference":
            raise bad(f"input[{i}]", "item references need stored responses")
        elif kind not in _DROPPED_ITEMS:
            raise bad(f"input[{i}].type", f"unsupported input item type {kind!r}")
    return messages


def _message(item: dict[str, Any], path: str) -> dict[str, Any]:
    role, content = item.get("role"), item.get("content")
    if role in ("system", "developer"):
        return {"role": "system", "content": "\n\n".join(_texts(content, f"{path}.content"))}
    if role == "assistant":
        return {"role": "assistant", "content": "".join(_texts(content, f"{path}.content"))}
    if role == "user":
        return {"role": "user", "content": _parts(content, f"{path}.content")}
    raise bad(f"{path}.role", f"unsupported role {role!r}")


def _texts(content: object, path: str) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts = []
    for i, part in enumerate(array_of(content, path)):
        kind = part.get("type") if isinstance(part, dict) else None
        key = "refusal" if kind == "refusal" else "text"
        if kind not in ("input_text", "output_text", "refusal"):
            raise bad(f"{path}[{i}].type", "only text parts are supported here")
        texts.append(_string(part.get(key), f"{path}[{i}].{key}"))
    return texts


def _parts(content: object, path: str) -> str | list[dict[str, Any]]:
    """User (or tool output) content as chat content: a string, or text and image parts."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(array_of(content, path)):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": _string(part.get("text"), f"{path}[{i}].text")})
        elif kind == "input_image":
            url = _string(part.get("image_url"), f"{path}[{i}].image_url")
            image: dict[str, Any] = {"url": url}
            if isinstance(detail := part.get("detail"), str):
                image["detail"] = detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise bad(f"{path}[{i}].type", f"unsupported content part type {kind!r}")
    return parts


def _tool_call(item: dict[str, Any], path: str, tools: _Tools) -> dict[str, Any]:
    call_id = _string(item.get("call_id"), f"{path}.call_id")
    name = _string(item.get("name"), f"{path}.name")
    namespace = item.get("namespace")
    flat = tools.flat(namespace if isinstance(namespace, str) else None, name)
    if item["type"] == "custom_tool_call":
        arguments = orjson.dumps({"input": _string(item.get("input"), f"{path}.input")}).decode()
    else:
        arguments = _string(item.get("arguments"), f"{path}.arguments")
    fn = {"name": flat, "arguments": arguments}
    return {"id": call_id, "type": "function", "function": fn}


def _add_call(messages: list[dict[str, Any]], call: dict[str, Any]) -> None:
    """Consecutive calls (and a call right after assistant text) form one assistant message."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_output(item: dict[str, Any], path: str) -> dict[str, Any]:
    call_id = _string(item.get("call_id"), f"{path}.call_id")
    return {"role": "tool", "tool_call_id": call_id,
            "content": _parts(item.get("output"), f"{path}.output")}  # fmt: skip


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise bad(path, "must be a string")
    return value
