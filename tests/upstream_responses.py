"""The OpenAI Responses API side of the fake upstream (``POST /v1/responses``).

Bodies and SSE events as OpenAI sends them, so that a passthrough reaches the
official SDK (and its strict ``responses.stream()`` helper) unchanged.  Every
response object also carries ``fake_extra``, a field no SDK knows, to show
that unknown fields survive the gateway.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Protocol

import orjson

__all__ = ["FAKE_EXTRA", "last_input_text", "responses_body", "responses_stream"]

FAKE_EXTRA = {"kept": True}


class Answer(Protocol):
    """What the fake answers (``upstream._Answer``)."""

    @property
    def id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def pieces(self) -> list[str]: ...  # text deltas, or argument JSON fragments
    @property
    def tool(self) -> str | None: ...
    @property
    def usage(self) -> tuple[int, int]: ...


def last_input_text(req: dict[str, Any]) -> str:
    """The text of the last user input of a Responses request."""
    items = req.get("input")
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            parts = content if isinstance(content, list) else []
            return " ".join(p["text"] for p in parts if p.get("type") == "input_text")
    return ""


def _usage(usage: tuple[int, int]) -> dict[str, Any]:
    return {
        "input_tokens": usage[0],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage[1],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": sum(usage),
    }


def _item(a: Answer, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    text = "".join(a.pieces) if done else ""
    if a.tool is not None:
        return {
            "type": "function_call", "id": f"fc_{a.id}", "call_id": f"call_{a.id}",
            "name": a.tool, "arguments": text, "status": status,
        }  # fmt: skip
    content = [{"type": "output_text", "text": text, "annotations": []}] if done else []
    return {
        "type": "message", "id": f"msg_{a.id}", "status": status, "role": "assistant",
        "content": content,
    }  # fmt: skip


def responses_body(a: Answer, req: dict[str, Any], *, done: bool = True) -> dict[str, Any]:
    """A Response object; not ``done``: still in progress, with no output or usage."""
    return {
        "id": f"resp_{a.id}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if done else "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "model": a.model,
        "output": [_item(a, True)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": req.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools", []),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _usage(a.usage) if done else None,
        "user": None,
        "metadata": {},
        "fake_extra": FAKE_EXTRA,
    }


def _event(kind: str, seq: int, **data: Any) -> bytes:
    payload = {"type": kind, "sequence_number": seq, **data}
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def responses_stream(
    a: Answer, req: dict[str, Any]
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(head, deltas, tail) SSE events of a Responses stream with one output item."""
    seq = itertools.count()
    started = responses_body(a, req, done=False)
    item = _item(a, False)
    where = {"item_id": item["id"], "output_index": 0}
    head = [
        _event("response.created", next(seq), response=started),
        _event("response.in_progress", next(seq), response=started),
        _event("response.output_item.added", next(seq), output_index=0, item=item),
    ]
    done_item = _item(a, True)
    if a.tool is not None:
        deltas = [
            _event("response.function_call_arguments.delta", next(seq), **where, delta=p)
            for p in a.pieces
        ]
        args = "".join(a.pieces)
        closing = [
            _event("response.function_call_arguments.done", next(seq), **where, arguments=args)
        ]
    else:
        part = {"type": "output_text", "text": "", "annotations": []}
        at = {**where, "content_index": 0}
        head.append(_event("response.content_part.added", next(seq), **at, part=part))
        deltas = [
            _event("response.output_text.delta", next(seq), **at, delta=p, logprobs=[])
            for p in a.pieces
        ]
        text = "".join(a.pieces)
        closing = [
            _event("response.output_text.done", next(seq), **at, text=text, logprobs=[]),
            _event("response.content_part.done", next(seq), **at, part={**part, "text": text}),
        ]
    final = responses_body(a, req)
    tail = [
        *closing,
        _event("response.output_item.done", next(seq), output_index=0, item=done_item),
        _event("response.completed", next(seq), response=final),
    ]
    return head, deltas, tail
