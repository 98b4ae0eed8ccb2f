"""Request translation: OpenAI Chat Completions <-> Anthropic Messages.

Both functions take a parsed JSON body and return a new body for the other
API, with ``model`` replaced by the resolved upstream model.  Anything invalid
or that cannot be honoured raises :class:`~minillm.core.errors.BadRequest` whose
message starts with the offending field's path (``messages[2].content[0].type: ...``).

OpenAI -> Anthropic (:func:`openai_to_anthropic_request`)
    * ``system`` / ``developer`` messages (wherever they appear) -> top-level
      ``system``: a string for one text, else a list of text blocks;
    * ``user`` / ``assistant`` content (string or parts): ``text``; ``image_url``
      with a base64 ``data:`` URL -> base64 image block, ``http(s)`` URL -> url
      image block (``detail`` is dropped); assistant ``refusal`` parts -> text;
    * assistant ``tool_calls`` -> ``tool_use`` blocks (``arguments`` must be a
      JSON object, ``""`` means ``{}``); ``tool`` messages -> ``tool_result``
      blocks in a user turn; consecutive same-role turns are merged, as
      Anthropic requires alternation; empty text is dropped (Anthropic rejects
      empty text blocks);
    * ``tools`` -> ``{name, description, input_schema}`` (default empty object
      schema); ``tool_choice`` auto/none/required/named -> auto/none/any/tool;
      ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``;
      ``tool_choice`` is omitted when no tools are given;
    * ``max_completion_tokens`` (preferred) or ``max_tokens`` -> ``max_tokens``,
      else ``default_max_tokens``; ``stop`` -> ``stop_sequences``; ``top_p``;
      ``user`` (or ``safety_identifier``) -> ``metadata.user_id``; ``stream``;
    * ``temperature`` must be in 0..2 (OpenAI's range) and is **clamped** to 1,
      Anthropic's maximum: values up to 1 keep their meaning, higher ones mean
      "as random as possible";
    * dropped as harmless: ``n`` of 1, ``seed``, ``stream_options``, ``store``,
      ``metadata``, ``service_tier``, ``prompt_cache_key``,
      ``prompt_cache_retention``, ``prompt_cache_options``, ``moderation``,
      ``logprobs: false``, ``top_logprobs: 0``, zero penalties, empty
      ``logit_bias``, ``response_format`` ``text``, ``modalities: ["text"]``,
      message ``name`` fields, and unknown top-level keys;
    * rejected: ``n`` > 1, ``logprobs``, ``top_logprobs``, non-zero
      ``frequency_penalty`` / ``presence_penalty``, ``logit_bias``,
      ``response_format`` json_object/json_schema, ``audio``, audio
      ``modalities``, ``prediction``, ``web_search_options``,
      ``reasoning_effort``, ``verbosity``, legacy ``functions`` /
      ``function_call`` and ``function`` messages, non-function tools,
      ``allowed_tools`` tool choice, ``input_audio`` / ``file`` content parts.

Anthropic -> OpenAI (:func:`anthropic_to_openai_request`) is in
:mod:`minillm.core.translate._to_openai_request`; see its docstring.
"""

from __future__ import annotations

from typing import Any

import orjson

from minillm.core.translate._common import array_of, bad, text_of
from minillm.core.translate._to_openai_request import anthropic_to_openai_request

__all__ = ["anthropic_to_openai_request", "openai_to_anthropic_request"]

_REJECTED = (
    "audio", "prediction", "web_search_options", "reasoning_effort", "verbosity",
    "functions", "function_call",
)  # fmt: skip


def openai_to_anthropic_request(
    body: dict[str, Any], *, model: str, default_max_tokens: int
) -> dict[str, Any]:
    """An Anthropic Messages request equivalent to OpenAI chat ``body``."""
    _check_options(body)
    system, messages = _messages(body.get("messages"))
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": _max_tokens(body, default_max_tokens),
        "messages": messages,
    }
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    if (stop := body.get("stop")) is not None:
        out["stop_sequences"] = _stop(stop)
    if (temperature := body.get("temperature")) is not None:
        out["temperature"] = min(_number(temperature, "temperature", 0, 2), 1.0)
    if (top_p := body.get("top_p")) is not None:
        out["top_p"] = _number(top_p, "top_p", 0, 1)
    if (user := body.get("user") or body.get("safety_identifier")) is not None:
        if not isinstance(user, str):
            raise bad("user", "must be a string")
        out["metadata"] = {"user_id": user}
    if tools := _tools(body.get("tools")):
        out["tools"] = tools
        if choice := _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls")):
            out["tool_choice"] = choice
    if body.get("stream"):
        out["stream"] = True
    return out


def _check_options(body: dict[str, Any]) -> None:
    if not isinstance(body, dict):
        raise bad("body", "must be a JSON object")
    for key in _REJECTED:
        if body.get(key) is not None:
            raise bad(key, "not supported by this model's provider")
    if body.get("n") not in (None, 1):
        raise bad("n", "only n=1 is supported by this model's provider")
    for key in ("logprobs", "top_logprobs", "frequency_penalty", "presence_penalty",
                "logit_bias"):  # fmt: skip
        if body.get(key):
            raise bad(key, "not supported by this model's provider")
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise bad("response_format", "only type 'text' is supported by this model's provider")
    if body.get("modalities") not in (None, ["text"]):
        raise bad("modalities", "only ['text'] is supported by this model's provider")


def _max_tokens(body: dict[str, Any], default: int) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(key, "must be a positive integer")
        return value
    return default


def _number(value: object, key: str, lo: float, hi: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
        raise bad(key, f"must be a number between {lo} and {hi}")
    return float(value)


def _stop(stop: object) -> list[str]:
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad("stop", "must be a string or an array of strings")
    return stops


# --- messages ------------------------------------------------------------------------


def _messages(messages: object) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system text blocks, alternating user/assistant turns)."""
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "must be a non-empty array")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise bad(path, "must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            if text := text_of(msg.get("content"), f"{path}.content"):
                system.append({"type": "text", "text": text})
            continue
        if role == "user":
            blocks = _content(msg.get("content"), f"{path}.content")
        elif role == "assistant":
            blocks = _assistant(msg, path)
        elif role == "tool":
            blocks, role = [_tool_result(msg, path)], "user"
        else:
            raise bad(f"{path}.role", f"unsupported role {role!r}")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise bad("messages", "must contain at least one non-empty user or assistant message")
    return system, turns


def _content(content: object, path: str, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if content is None and allow_empty:
        return []
    if not isinstance(content, list):
        raise bad(path, "must be a string or an array of content parts")
    return [b for i, part in enumerate(content) if (b := _part(part, f"{path}[{i}]"))]


def _part(part: object, path: str) -> dict[str, Any] | None:
    if not isinstance(part, dict):
        raise bad(path, "must be an object")
    kind = part.get("type")
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise bad(f"{path}.{kind}", "must be a string")
        return {"type": "text", "text": text} if text else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise bad(f"{path}.image_url.url", "must be a string")
        return {"type": "image", "source": _image_source(url, f"{path}.image_url.url")}
    raise bad(f"{path}.type", f"unsupported content part type {kind!r}")


def _image_source(url: str, path: str) -> dict[str, Any]:
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    if url.startswith("data:"):
        meta, sep, data = url[5:].partition(",")
        media_type, _, encoding = meta.partition(";")
        if sep and encoding == "base64" and media_type.startswith("image/"):
            return {"type": "base64", "media_type": media_type, "data": data}
        raise bad(path, "data URLs must look like data:image/<type>;base64,<data>")
    raise bad(path, "must be an http(s) URL or a base64 data: URL")


def _assistant(msg: dict[str, Any], path: str) -> list[dict[str, Any]]:
    blocks = _content(msg.get("content"), f"{path}.content", allow_empty=True)
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise bad(f"{path}.tool_calls", "must be an array")
    for i, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{path}.tool_calls[{i}]"))
    if msg.get("function_call") is not None:
        raise bad(f"{path}.function_call", "legacy function calls are not supported; use tools")
    return blocks


def _tool_use(call: object, path: str) -> dict[str, Any]:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise bad(path, "must be a function tool call")
    fn = call.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise bad(f"{path}.function.name", "must be a string")
    if not isinstance(call.get("id"), str):
        raise bad(f"{path}.id", "must be a string")
    args = fn.get("arguments") or "{}"
    try:
        parsed = orjson.loads(args) if isinstance(args, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise bad(f"{path}.function.arguments", "must be a JSON object encoded as a string")
    return {"type": "tool_use", "id": call["id"], "name": fn["name"], "input": parsed}


def _tool_result(msg: dict[str, Any], path: str) -> dict[str, Any]:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str):
        raise bad(f"{path}.tool_call_id", "must be a string")
    content = msg.get("content")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, list):
        result["content"] = _content(content, f"{path}.content")
    elif content:
        result["content"] = text_of(content, f"{path}.content")
    return result


# --- tools ---------------------------------------------------------------------------

_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def _tools(tools: object) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(array_of(tools, "tools")):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise bad(f"tools[{i}]", "only function tools are supported")
        if not isinstance(fn.get("name"), str):
            raise bad(f"tools[{i}].function.name", "must be a string")
        converted: dict[str, Any] = {"name": fn["name"]}
        if isinstance(description := fn.get("description"), str):
            converted["description"] = description
        converted["input_schema"] = fn.get("parameters") or _EMPTY_SCHEMA
        out.append(converted)
    return out


def _tool_choice(choice: object, parallel: object) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    if choice == "none":
        return {"type": "none"}
    if choice is None or choice == "auto":
        out: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        fn = choice.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad("tool_choice.function.name", "must be a string")
        out = {"type": "tool", "name": fn["name"]}
    else:
        raise bad("tool_choice", "must be 'auto', 'none', 'required' or a function choice")
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out
