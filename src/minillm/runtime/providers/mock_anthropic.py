"""The offline mock's answers in the Anthropic Messages format (sans-I/O).

A planned :class:`~minillm.runtime.providers.mock_plan.Reply` becomes a ``message``
body, or the SSE frames of a streamed one: ``message_start``, one content
block (a text, or a ``tool_use`` whose input arrives as ``input_json_delta``
fragments), ``message_delta`` with the stop reason and output tokens, and
``message_stop``.
"""

from __future__ import annotations

import orjson

from minillm.runtime.providers.mock_plan import Json, Reply, arguments_pieces, text_pieces

__all__ = ["message_body", "message_frames"]

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _usage(reply: Reply, output_tokens: int) -> Json:
    return {
        "input_tokens": reply.prompt_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _head(message_id: str, model: str) -> Json:
    return {"id": message_id, "type": "message", "role": "assistant", "model": model}


def _tool_use(reply: Reply) -> Json:
    assert reply.call is not None
    digest, name, _ = reply.call
    return {"type": "tool_use", "id": f"toolu_{digest}", "name": name, "input": {}}


def message_body(reply: Reply, message_id: str, model: str) -> bytes:
    """The JSON body of a plain (not streamed) reply."""
    if reply.call is not None:
        content: list[Json] = [{**_tool_use(reply), "input": orjson.loads(reply.call[2])}]
    else:
        content = [{"type": "text", "text": reply.text or ""}]
    return orjson.dumps(
        {
            **_head(message_id, model),
            "content": content,
            "stop_reason": _STOP_REASONS[reply.finish_reason],
            "stop_sequence": None,
            "usage": _usage(reply, reply.completion_tokens),
        }
    )


def _event(event: Json) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def message_frames(reply: Reply, message_id: str, model: str) -> list[bytes]:
    """The whole SSE body of a streamed reply, one frame per event."""
    message = {
        **_head(message_id, model),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(reply, 1),
    }
    frames = [_event({"type": "message_start", "message": message})]
    if reply.call is None:
        block: Json = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in text_pieces(reply.text or "")]
    else:
        block = _tool_use(reply)
        deltas = [
            {"type": "input_json_delta", "partial_json": p} for p in arguments_pieces(reply.call[2])
        ]
    frames.append(_event({"type": "content_block_start", "index": 0, "content_block": block}))
    frames += [_event({"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
    frames.append(_event({"type": "content_block_stop", "index": 0}))
    stop = {"stop_reason": _STOP_REASONS[reply.finish_reason], "stop_sequence": None}
    usage = {"output_tokens": reply.completion_tokens}
    frames.append(_event({"type": "message_delta", "delta": stop, "usage": usage}))
    frames.append(_event({"type": "message_stop"}))
    return frames
