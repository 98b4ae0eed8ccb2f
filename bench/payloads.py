"""Request and response bodies shared by the fake provider and the load generators.

Everything here is encoded once, at import, so neither side spends time on JSON
while the benchmark runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

STREAM_CHUNKS = 50
LONG_STREAM_CHUNKS = 8000  # ~1.3 MB per stream: unbounded buffering shows up in RSS
OPENAI_MODEL = "gpt-4o-mini"
CLAUDE_MODEL = "claude-3-5-haiku-latest"
LONG_SUFFIX = "-long"
# A paced stream: ~6 KB of SSE at ~1000 B/s (about 6 s), like a real model's output.
PACED_SUFFIX = "-paced"
PACED_CHUNKS = 30
PACED_SECONDS = 6.0
_WORDS = [f"word{i:02d} " for i in range(STREAM_CHUNKS)]
_TEXT = "".join(_WORDS)


def _sse(data: dict[str, object], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def openai_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": OPENAI_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _TEXT},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": STREAM_CHUNKS,
                "total_tokens": 12 + STREAM_CHUNKS,
            },
        }
    )


def anthropic_body() -> bytes:
    return orjson.dumps(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": CLAUDE_MODEL,
            "content": [{"type": "text", "text": _TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": STREAM_CHUNKS},
        }
    )


def openai_events(n: int) -> list[bytes]:
    def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": OPENAI_MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events = [_sse(chunk({"role": "assistant", "content": ""}))]
    events += [_sse(chunk({"content": _WORDS[i % STREAM_CHUNKS]})) for i in range(n)]
    events.append(_sse(chunk({}, "stop")))
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_events(n: int) -> list[bytes]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": CLAUDE_MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        },
    }
    events = [
        _sse(start, "message_start"),
        _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
    ]
    events += [
        _sse(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": _WORDS[i % STREAM_CHUNKS]},
            },
            "content_block_delta",
        )
        for i in range(n)
    ]
    events.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    events.append(
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": n},
            },
            "message_delta",
        )
    )
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return events


@dataclass(frozen=True, slots=True)
class Api:
    """One client-facing API: where to POST and how to recognise a complete answer."""

    name: str
    path: str
    done_marker: bytes  # present in every complete streamed answer
    json_key: bytes  # present in every complete non-streamed answer


OPENAI = Api("openai", "/v1/chat/completions", b"[DONE]", b'"choices"')
ANTHROPIC = Api("anthropic", "/v1/messages", b"message_stop", b'"content"')
APIS = {a.name: a for a in (OPENAI, ANTHROPIC)}


def request_body(api: Api, model: str, stream: bool) -> bytes:
    system = "You are a terse assistant."
    user = {"role": "user", "content": "Say hello in fifty words."}
    if api is ANTHROPIC:
        return orjson.dumps(
            {
                "model": model,
                "max_tokens": 256,
                "system": system,
                "messages": [user],
                "stream": stream,
            }
        )
    return orjson.dumps(
        {
            "model": model,
            "max_tokens": 256,
            "stream": stream,
            "messages": [{"role": "system", "content": system}, user],
        }
    )


def http_request(api: Api, model: str, stream: bool, host: str) -> bytes:
    """A complete, pre-encoded HTTP/1.1 keep-alive request."""
    body = request_body(api, model, stream)
    head = (
        f"POST {api.path} HTTP/1.1\r\nhost: {host}\r\n"
        "content-type: application/json\r\nauthorization: Bearer sk-bench\r\n"
        "x-api-key: sk-bench\r\nanthropic-version: 2023-06-01\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body
