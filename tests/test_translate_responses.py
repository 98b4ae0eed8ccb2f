"""Response translation in both directions, checked against the SDKs' models."""

from __future__ import annotations

from typing import Any

import anthropic.types
import openai.types.chat
import orjson
import pytest

from minillm.core.errors import UpstreamProtocolError
from minillm.core.translate.responses import (
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)


def anthropic_message(
    content: list[dict[str, Any]], stop: str = "end_turn", **usage: int
) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def openai_completion(
    message: dict[str, Any], finish: str | None = "stop", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": usage or {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def a2o(body: dict[str, Any]) -> dict[str, Any]:
    out = anthropic_to_openai_response(body, created=123)
    openai.types.chat.ChatCompletion.model_validate(orjson.loads(orjson.dumps(out)))
    return out


def o2a(body: dict[str, Any]) -> dict[str, Any]:
    out = openai_to_anthropic_response(body)
    anthropic.types.Message.model_validate(orjson.loads(orjson.dumps(out)))
    return out


# --- Anthropic -> OpenAI -------------------------------------------------------------


def test_a2o_text() -> None:
    out = a2o(
        anthropic_message(
            [
                {"type": "thinking", "thinking": "...", "signature": "s"},
                {"type": "text", "text": "Hello, "},
                {"type": "text", "text": "world"},
            ]
        )
    )
    assert out == {
        "id": "chatcmpl-msg_01",
        "object": "chat.completion",
        "created": 123,
        "model": "claude-x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "Hello, world", "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def test_a2o_tool_calls_only() -> None:
    out = a2o(
        anthropic_message(
            [
                {"type": "tool_use", "id": "toolu_1", "name": "wx", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
            ],
            stop="tool_use",
        )
    )
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "wx", "arguments": '{"city":"Oslo"}'},
        },
        {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
    ]


def test_a2o_text_and_tool_call() -> None:
    out = a2o(
        anthropic_message(
            [
                {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": "t", "name": "f", "input": {}},
            ],
            stop="tool_use",
        )
    )
    assert out["choices"][0]["message"]["content"] == "ok"
    assert len(out["choices"][0]["message"]["tool_calls"]) == 1


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
        ("new_reason", "stop"),
    ],
)
def test_a2o_finish_reasons(stop: Any, finish: str) -> None:
    assert a2o(anthropic_message([], stop=stop))["choices"][0]["finish_reason"] == finish


def test_a2o_usage_with_cache() -> None:
    out = a2o(
        anthropic_message(
            [{"type": "text", "text": "x"}],
            cache_read_input_tokens=100,
            cache_creation_input_tokens=20,
        )
    )
    assert out["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 5,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


def test_a2o_empty_content_is_empty_string() -> None:
    assert a2o(anthropic_message([]))["choices"][0]["message"]["content"] == ""


def test_a2o_created_defaults_to_now() -> None:
    out = anthropic_to_openai_response(anthropic_message([]))
    assert isinstance(out["created"], int) and out["created"] > 1_600_000_000


def test_a2o_malformed() -> None:
    with pytest.raises(UpstreamProtocolError):
        anthropic_to_openai_response({"type": "message"})


# --- OpenAI -> Anthropic -------------------------------------------------------------


def test_o2a_text() -> None:
    assert o2a(openai_completion({"content": "Hi"})) == {
        "id": "msg_chatcmpl-9",
        "type": "message",
        "role": "assistant",
        "model": "gpt-x",
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 3},
    }


def test_o2a_tool_calls() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "wx", "arguments": '{"c":"O"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
        {"id": "call_3", "type": "function", "function": {"name": "bad", "arguments": "{oops"}},
        {"id": "call_4", "type": "function", "function": {"name": "arr", "arguments": "[1]"}},
    ]
    out = o2a(openai_completion({"content": None, "tool_calls": calls}, finish="tool_calls"))
    assert out["stop_reason"] == "tool_use"
    assert out["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "wx", "input": {"c": "O"}},
        {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
        {"type": "tool_use", "id": "call_3", "name": "bad", "input": {"_raw": "{oops"}},
        {"type": "tool_use", "id": "call_4", "name": "arr", "input": {"_raw": "[1]"}},
    ]


def test_o2a_text_then_tools_and_stop_with_tools() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    out = o2a(openai_completion({"content": "Sure.", "tool_calls": [call]}, finish="stop"))
    assert [b["type"] for b in out["content"]] == ["text", "tool_use"]
    assert out["stop_reason"] == "tool_use"  # servers that finish tool calls with "stop"
    out = o2a(openai_completion({"content": "", "tool_calls": [call]}, finish="length"))
    assert [b["type"] for b in out["content"]] == ["tool_use"]
    assert out["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("weird", "end_turn"),
    ],
)
def test_o2a_stop_reasons(finish: Any, stop: str) -> None:
    assert o2a(openai_completion({"content": "x"}, finish=finish))["stop_reason"] == stop


def test_o2a_usage_with_cache_and_missing_usage() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
        "prompt_tokens_details": {"cached_tokens": 60},
    }
    out = o2a(openai_completion({"content": "x"}, usage=usage))
    assert out["usage"] == {"input_tokens": 40, "output_tokens": 7, "cache_read_input_tokens": 60}
    body = openai_completion({"content": "x"})
    del body["usage"]
    assert o2a(body)["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_o2a_refusal_and_empty_content() -> None:
    out = o2a(openai_completion({"content": None, "refusal": "I can't."}, finish="content_filter"))
    assert out["content"] == [{"type": "text", "text": "I can't."}]
    assert out["stop_reason"] == "refusal"
    assert o2a(openai_completion({"content": ""}))["content"] == []
    out = o2a(
        openai_completion(
            {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        )
    )
    assert out["content"] == [{"type": "text", "text": "ab"}]


@pytest.mark.parametrize(
    "body", [{}, {"choices": []}, {"choices": [{"index": 0}]}, {"choices": "x"}]
)
def test_o2a_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamProtocolError):
        openai_to_anthropic_response(body)
