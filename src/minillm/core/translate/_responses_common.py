"""The Responses API's output shapes, shared by the whole-body and stream translations.

Ids are derived from the upstream's, so that a stream gives the same bytes
however the network chunks it: the response is ``"resp_" + chat id`` (without
its ``chatcmpl-`` prefix), its message item ``"msg_" + that``, a function call
item ``"fc_" + call id`` and a custom tool call item ``"ctc_" + call id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from minillm.core.translate._common import count

# Chat finish_reason -> Responses incomplete_details.reason (anything else: completed).
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


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


def response_id(chat_id: object) -> str:
    """The response id for a chat completion id."""
    if not isinstance(chat_id, str) or not chat_id:
        return "resp_minillm"
    return "resp_" + chat_id.removeprefix("chatcmpl-")


def message_id(resp_id: str) -> str:
    return "msg_" + resp_id.removeprefix("resp_")


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [text_part(text)] if status == "completed" else []
    return {
        "id": item_id, "type": "message", "role": "assistant", "status": status,
        "content": content,
    }  # fmt: skip


def call_item(
    plan: ResponsesPlan, flat_name: str, call_id: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    """A ``function_call`` item, or a ``custom_tool_call`` item for a custom tool,
    named as the client declared the tool (with its ``namespace``, if any)."""
    namespace, name = plan.tool_names.get(flat_name, (None, flat_name))
    item: dict[str, Any]
    if flat_name in plan.custom_tools:
        item = {
            "id": "ctc_" + call_id, "type": "custom_tool_call", "status": status,
            "call_id": call_id, "name": name,
            "input": custom_input(arguments) if status == "completed" else "",
        }  # fmt: skip
    else:
        item = {
            "id": "fc_" + call_id, "type": "function_call", "status": status,
            "call_id": call_id, "name": name, "arguments": arguments,
        }  # fmt: skip
    if namespace is not None:
        item["namespace"] = namespace
    return item


def custom_input(arguments: str) -> str:
    """A custom tool's raw input from the chat arguments ``{"input": "..."}``
    (arguments of another shape are passed on as they are)."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    value = parsed.get("input") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else arguments


def responses_usage(usage: object) -> dict[str, Any]:
    """Responses ``usage`` for a chat usage object."""
    u = usage if isinstance(usage, dict) else {}
    prompt = u.get("prompt_tokens_details")
    completion = u.get("completion_tokens_details")
    cached = prompt.get("cached_tokens") if isinstance(prompt, dict) else None
    reasoning = completion.get("reasoning_tokens") if isinstance(completion, dict) else None
    input_tokens, output_tokens = count(u.get("prompt_tokens")), count(u.get("completion_tokens"))
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": count(cached), "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": count(reasoning)},
        "total_tokens": input_tokens + output_tokens,
    }


def response_object(
    plan: ResponsesPlan,
    resp_id: str,
    created_at: int,
    output: list[dict[str, Any]],
    *,
    finish: object = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` object: in progress while ``finish`` is ``None``, else
    completed or incomplete for that chat ``finish_reason``."""
    req = plan.request
    status, incomplete = "in_progress", None
    if finish is not None:
        reason = _INCOMPLETE.get(finish) if isinstance(finish, str) else None
        status = "completed" if reason is None else "incomplete"
        incomplete = None if reason is None else {"reason": reason}
    instructions, parallel = req.get("instructions"), req.get("parallel_tool_calls")
    text = req.get("text") if isinstance(req.get("text"), dict) else {"format": {"type": "text"}}
    return {
        "id": resp_id, "object": "response", "created_at": created_at, "status": status,
        "error": None, "incomplete_details": incomplete,
        "instructions": instructions if isinstance(instructions, str) else None,
        "max_output_tokens": req.get("max_output_tokens"), "model": req.get("model"),
        "output": output, "parallel_tool_calls": parallel if isinstance(parallel, bool) else True,
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "store": False, "temperature": req.get("temperature"), "text": text,
        "tool_choice": req.get("tool_choice") or "auto", "tools": req.get("tools") or [],
        "top_p": req.get("top_p"), "truncation": "disabled", "usage": usage,
        "metadata": {}, "user": None,
    }  # fmt: skip
