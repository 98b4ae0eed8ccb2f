"""Request translation in both directions."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from minillm.core.errors import BadRequest
from minillm.core.translate.requests import anthropic_to_openai_request, openai_to_anthropic_request


def to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    return openai_to_anthropic_request(
        {"model": "alias", **body}, model="claude-x", default_max_tokens=4096
    )


def to_openai(body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return anthropic_to_openai_request(
        {"model": "alias", "max_tokens": 100, **body}, model="gpt-x", **kwargs
    )


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


# --- OpenAI -> Anthropic -------------------------------------------------------------


def test_minimal() -> None:
    assert to_anthropic({"messages": [user("hi")]}) == {
        "model": "claude-x",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [text("hi")]}],
    }


def test_system_and_developer_messages_become_system() -> None:
    out = to_anthropic({"messages": [{"role": "system", "content": "be brief"}, user("hi")]})
    assert out["system"] == "be brief"
    out = to_anthropic(
        {
            "messages": [
                {"role": "system", "content": "a"},
                user("hi"),
                {"role": "developer", "content": [text("b"), text("c")]},
            ]
        }
    )
    assert out["system"] == [text("a"), text("b\n\nc")]
    assert out["messages"] == [{"role": "user", "content": [text("hi")]}]


def test_content_parts_and_images() -> None:
    out = to_anthropic(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        text("look"),
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                        },
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                    ],
                }
            ]
        }
    )
    assert out["messages"][0]["content"] == [
        text("look"),
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]


@pytest.mark.parametrize("url", ["data:text/plain;base64,AA", "data:image/png,AA", "ftp://x/y"])
def test_bad_image_urls(url: str) -> None:
    part = {"type": "image_url", "image_url": {"url": url}}
    with pytest.raises(BadRequest, match=r"messages\[0\]\.content\[0\]\.image_url\.url"):
        to_anthropic({"messages": [{"role": "user", "content": [part]}]})


def test_consecutive_same_role_messages_merge() -> None:
    out = to_anthropic(
        {
            "messages": [
                user("a"),
                user("b"),
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": "d"},
            ]
        }
    )
    assert out["messages"] == [
        {"role": "user", "content": [text("a"), text("b")]},
        {"role": "assistant", "content": [text("c"), text("d")]},
    ]


def test_tool_calls_and_results() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get", "arguments": '{"q": 1}'},
    }
    call2 = {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
    out = to_anthropic(
        {
            "messages": [
                user("hi"),
                {"role": "assistant", "content": None, "tool_calls": [call, call2]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "tool", "tool_call_id": "call_2", "content": [text("noon")]},
                user("thanks"),
            ]
        }
    )
    assert out["messages"] == [
        {"role": "user", "content": [text("hi")]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "get", "input": {"q": 1}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "42"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [text("noon")]},
                text("thanks"),
            ],
        },
    ]


def test_assistant_text_with_tool_calls_and_empty_text_dropped() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    out = to_anthropic(
        {"messages": [user("x"), {"role": "assistant", "content": "", "tool_calls": [call]}]}
    )
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c", "name": "f", "input": {}}
    ]
    out = to_anthropic(
        {"messages": [user("x"), {"role": "assistant", "content": "ok", "tool_calls": [call]}]}
    )
    assert [b["type"] for b in out["messages"][1]["content"]] == ["text", "tool_use"]


@pytest.mark.parametrize("args", ["{bad", "[1]", '"s"'])
def test_invalid_tool_arguments(args: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}
    with pytest.raises(BadRequest, match=r"messages\[1\]\.tool_calls\[0\]\.function\.arguments"):
        to_anthropic({"messages": [user("x"), {"role": "assistant", "tool_calls": [call]}]})


def test_tools_and_tool_choice() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "a",
                "description": "A",
                "parameters": {"type": "object", "properties": {"x": {}}},
            },
        },
        {"type": "function", "function": {"name": "b"}},
    ]
    out = to_anthropic({"messages": [user("x")], "tools": tools})
    assert out["tools"] == [
        {
            "name": "a",
            "description": "A",
            "input_schema": {"type": "object", "properties": {"x": {}}},
        },
        {"name": "b", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in out
    cases: list[tuple[Any, Any, Any]] = [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "a"}}, None, {"type": "tool", "name": "a"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ]
    for choice, parallel, expected in cases:
        body: dict[str, Any] = {"messages": [user("x")], "tools": tools, "tool_choice": choice}
        if parallel is not None:
            body["parallel_tool_calls"] = parallel
        assert to_anthropic(body)["tool_choice"] == expected, (choice, parallel)
    # no tools: tool_choice is dropped
    assert "tool_choice" not in to_anthropic({"messages": [user("x")], "tool_choice": "required"})


def test_scalar_options() -> None:
    out = to_anthropic(
        {
            "messages": [user("x")],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "stop": "END",
            "temperature": 1.7,
            "top_p": 0.5,
            "user": "u1",
            "stream": True,
            "stream_options": {"include_usage": True},
            "n": 1,
            "seed": 3,
            "frequency_penalty": 0,
            "logprobs": False,
            "response_format": {"type": "text"},
            "store": False,
        }
    )
    assert out == {
        "model": "claude-x",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": [text("x")]}],
        "stop_sequences": ["END"],
        "temperature": 1.0,
        "top_p": 0.5,
        "metadata": {"user_id": "u1"},
        "stream": True,
    }
    out = to_anthropic(
        {
            "messages": [user("x")],
            "max_tokens": 7,
            "stop": ["a", "b"],
            "temperature": 0.3,
            "stream": False,
        }
    )
    assert (out["max_tokens"], out["stop_sequences"], out["temperature"]) == (7, ["a", "b"], 0.3)
    assert "stream" not in out


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"audio": {"voice": "x"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 2}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({"stop": [1]}, "stop"),
        ({"user": 5}, "user"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, r"tools\[0\]"),
        ({"tools": [{"type": "function", "function": {}}]}, r"tools\[0\]\.function\.name"),
        (
            {
                "tools": [{"type": "function", "function": {"name": "a"}}],
                "tool_choice": {"type": "allowed_tools"},
            },
            "tool_choice",
        ),
    ],
)
def test_rejected_options(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest, match=f"^{field}:"):
        to_anthropic({"messages": [user("x")], **extra})


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (None, "messages"),
        ([], "messages"),
        (["hi"], r"messages\[0\]"),
        ([{"content": "x"}], r"messages\[0\]\.role"),
        ([{"role": "function", "content": "x", "name": "f"}], r"messages\[0\]\.role"),
        ([{"role": "user", "content": 5}], r"messages\[0\]\.content"),
        (
            [{"role": "user", "content": [{"type": "input_audio"}]}],
            r"messages\[0\]\.content\[0\]\.type",
        ),
        (
            [{"role": "user", "content": [{"type": "text", "text": 1}]}],
            r"messages\[0\]\.content\[0\]\.text",
        ),
        ([{"role": "tool", "content": "x"}], r"messages\[0\]\.tool_call_id"),
        ([{"role": "system", "content": [{"type": "image_url"}]}], r"messages\[0\]\.content\[0\]"),
        ([{"role": "system", "content": "only system"}], "messages"),
        (
            [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom"}]}],
            r"messages\[0\]\.tool_calls\[0\]",
        ),
        ([{"role": "assistant", "function_call": {"name": "f"}}], r"messages\[0\]\.function_call"),
    ],
)
def test_invalid_messages(messages: Any, field: str) -> None:
    with pytest.raises(BadRequest, match=f"^{field}:"):
        to_anthropic({"messages": messages})


def test_body_must_be_object() -> None:
    with pytest.raises(BadRequest):
        openai_to_anthropic_request([], model="m", default_max_tokens=1)  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        anthropic_to_openai_request("x", model="m")  # type: ignore[arg-type]


# --- Anthropic -> OpenAI -------------------------------------------------------------


def test_a2o_minimal() -> None:
    assert to_openai({"messages": [user("hi")]}) == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100,
    }
    out = to_openai({"messages": [user("hi")]}, reasoning=True)
    assert out["max_completion_tokens"] == 100
    assert "max_tokens" not in out


def test_a2o_system() -> None:
    assert to_openai({"system": "sys", "messages": [user("hi")]})["messages"][0] == {
        "role": "system",
        "content": "sys",
    }
    out = to_openai(
        {
            "system": [text("a"), {**text("b"), "cache_control": {"type": "ephemeral"}}],
            "messages": [user("hi")],
        }
    )
    assert out["messages"][0] == {"role": "system", "content": "a\n\nb"}


def test_a2o_content_blocks() -> None:
    out = to_openai(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        text("see"),
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/i.png"}},
                    ],
                }
            ]
        }
    )
    assert out["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/i.png"}},
            ],
        }
    ]


def test_a2o_tool_use_and_results() -> None:
    out = to_openai(
        {
            "messages": [
                user("weather?"),
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        text("Let me check."),
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "wx",
                            "input": {"city": "Oslo"},
                        },
                        {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "is_error": True,
                            "content": [text("clock"), text("broken")],
                        },
                        text("and tomorrow?"),
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_3", "name": "wx", "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3"}]},
            ]
        }
    )
    assert out["messages"] == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "wx", "arguments": '{"city":"Oslo"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "now", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: clock\n\nbroken"},
        {"role": "user", "content": "and tomorrow?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_3", "type": "function", "function": {"name": "wx", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_3", "content": ""},
    ]


def test_a2o_tools_and_choice() -> None:
    tools = [
        {
            "name": "wx",
            "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
    ]
    out = to_openai({"messages": [user("x")], "tools": tools})
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "wx",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}},
    ]
    assert "tool_choice" not in out
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "wx"},
            {"tool_choice": {"type": "function", "function": {"name": "wx"}}},
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        ({"type": "any", "disable_parallel_tool_use": False}, {"tool_choice": "required"}),
    ]
    for choice, expected in cases:
        got = to_openai({"messages": [user("x")], "tools": tools, "tool_choice": choice})
        assert {k: got[k] for k in ("tool_choice", "parallel_tool_calls") if k in got} == expected


def test_a2o_scalar_options() -> None:
    out = to_openai(
        {
            "messages": [user("x")],
            "stop_sequences": ["Z"],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 5,
            "metadata": {"user_id": "u"},
            "stream": True,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "service_tier": "auto",
        }
    )
    assert out == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 100,
        "stop": ["Z"],
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, r"messages\[0\]\.role"),
        (
            {"messages": [{"role": "system", "content": [{"type": "image"}]}]},
            r"messages\[0\]\.content\[0\]",
        ),
        ({"messages": [{"role": "user", "content": None}]}, r"messages\[0\]\.content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document"}]}]},
            r"messages\[0\]\.content\[0\]\.source",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "container_upload"}]}]},
            r"messages\[0\]\.content\[0\]\.type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "url", "url": "https://x.test/a.pdf"},
                            }
                        ],
                    }
                ]
            },
            r"messages\[0\]\.content\[0\]\.source",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            r"messages\[0\]\.content\[0\]\.source",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [{"type": "tool_result"}],
                            }
                        ],
                    }
                ]
            },
            r"messages\[0\]\.content\[0\]\.content\[0\]\.type",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]}]},
            r"messages\[0\]\.content\[0\]",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "server_tool_use"}]}]},
            r"messages\[0\]\.content\[0\]\.type",
        ),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, r"tools\[0\]"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, r"tools\[0\]"),
        ({"output_config": {"effort": "extreme"}}, r"output_config\.effort"),
        ({"tools": [{"name": "a"}], "tool_choice": {"type": "tool"}}, "tool_choice"),
        ({"temperature": 1.5}, "temperature"),
        ({"stop_sequences": "x"}, "stop_sequences"),
        ({"system": 5}, "system"),
        ({"output_config": {"format": {"type": "json_schema"}}}, r"output_config\.format"),
        ({"mcp_servers": [{"url": "x"}]}, "mcp_servers"),
    ],
)
def test_a2o_rejected(body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest, match=f"^{field}:"):
        to_openai({"messages": [user("x")], **body})


CLAUDE_CODE_USER_ID = '{"device_id":"7c0e0935","account_uuid":"","session_id":"b45a14db-410c-4fb0"}'


def test_a2o_claude_code_request() -> None:
    """The fields Claude Code 2.1.x sends: system turns in place, the rest dropped."""
    cached = {"cache_control": {"type": "ephemeral"}}
    out = to_openai(
        {
            "max_tokens": 32000,
            "system": [text("billing"), {**text("You are an agent."), **cached}],
            "messages": [
                {"role": "user", "content": [text("<reminder>"), {**text("run it"), **cached}]},
                {"role": "system", "content": [{**text("# Environment"), **cached}]},
                {"role": "system", "content": "second"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", **cached}],
                },
            ],
            "tools": [
                {"name": "Bash", "input_schema": {"type": "object"}, **cached},
                {"name": "Hidden", "input_schema": {"type": "object"}, "defer_loading": True},
            ],
            "metadata": {"user_id": CLAUDE_CODE_USER_ID},
            "thinking": {"type": "adaptive", "display": "omitted"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "output_config": {"effort": "high"},
            "cache_control": {"type": "ephemeral"},
            "speed": "fast",
            "inference_geo": "us",
            "diagnostics": {"previous_message_id": "msg_1"},
            "container": "c1",
            "service_tier": "auto",
            "stream": True,
        }
    )
    assert out == {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "billing\n\nYou are an agent."},
            {"role": "user", "content": [text("<reminder>"), text("run it")]},
            {"role": "system", "content": "# Environment"},
            {"role": "system", "content": "second"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": ""},
        ],
        "max_tokens": 32000,
        "user": hashlib.sha256(CLAUDE_CODE_USER_ID.encode()).hexdigest(),
        "tools": [
            {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_a2o_reasoning_model() -> None:
    body = {"messages": [user("x")], "temperature": 0.5, "top_p": 0.9}
    assert "reasoning_effort" not in to_openai({**body, "output_config": {"effort": "low"}})
    for effort, expected in [
        ("low", "low"),
        ("medium", "medium"),
        ("xhigh", "high"),
        ("max", "high"),
    ]:
        out = to_openai({**body, "output_config": {"effort": effort}}, reasoning=True)
        assert out == {
            "model": "gpt-x",
            "messages": [{"role": "user", "content": "x"}],
            "max_completion_tokens": 100,
            "reasoning_effort": expected,
        }


def test_a2o_short_user_id_and_strict_tools_kept() -> None:
    tool = {
        "name": "a",
        "input_schema": {"type": "object"},
        "strict": True,
        "eager_input_streaming": True,
    }
    out = to_openai({"messages": [user("x")], "metadata": {"user_id": "u-1"}, "tools": [tool]})
    assert out["user"] == "u-1"
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "a", "parameters": {"type": "object"}, "strict": True},
        }
    ]


def test_a2o_deferred_tool_sent_once_referenced_or_forced() -> None:
    tools = [
        {"name": "ToolSearch", "input_schema": {"type": "object"}},
        {"name": "Later", "input_schema": {"type": "object"}, "defer_loading": True},
    ]
    search = {"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {"query": "later"}}
    found = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [{"type": "tool_reference", "tool_name": "Later"}],
    }
    messages = [
        user("x"),
        {"role": "assistant", "content": [search]},
        {"role": "user", "content": [found]},
    ]
    out = to_openai({"messages": messages, "tools": tools})
    assert [t["function"]["name"] for t in out["tools"]] == ["ToolSearch", "Later"]
    assert out["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "t1",
        "content": "Tool loaded: Later",
    }
    out = to_openai({"messages": [user("x")], "tools": tools})
    assert [t["function"]["name"] for t in out["tools"]] == ["ToolSearch"]
    out = to_openai(
        {"messages": [user("x")], "tools": tools, "tool_choice": {"type": "tool", "name": "Later"}}
    )
    assert [t["function"]["name"] for t in out["tools"]] == ["ToolSearch", "Later"]


def test_a2o_tool_result_images_follow_as_user_content() -> None:
    png = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [text("shot:"), png]}
    out = to_openai({"messages": [{"role": "user", "content": [result, text("what is it?")]}]})
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "shot:"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                text("what is it?"),
            ],
        },
    ]


def test_a2o_documents_and_search_results() -> None:
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}
    blocks = [
        {
            "type": "document",
            "title": "Notes",
            "source": {"type": "text", "media_type": "text/plain", "data": "n"},
        },
        {"type": "document", "source": {"type": "content", "content": [text("a"), text("b")]}},
        {"type": "document", "source": pdf, "citations": {"enabled": True}},
        {
            "type": "search_result",
            "source": "https://x.test",
            "title": "X",
            "content": [text("hit")],
        },
    ]
    out = to_openai({"messages": [{"role": "user", "content": blocks}]})
    assert out["messages"][0]["content"] == [
        text("Notes\n\nn"),
        text("a\n\nb"),
        {
            "type": "file",
            "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBER"},
        },
        text("X https://x.test\n\nhit"),
    ]


def test_a2o_output_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    out = to_openai(
        {
            "messages": [user("x")],
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        }
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }
    beta = to_openai(
        {"messages": [user("x")], "output_format": {"type": "json_schema", "schema": schema}}
    )
    assert beta["response_format"] == out["response_format"]


def test_public_api() -> None:
    import minillm.core.sse
    import minillm.core.translate
    from minillm.core.translate import requests, responses, streams, upstream_errors

    for module in (
        minillm.core.sse,
        minillm.core.translate,
        requests,
        responses,
        streams,
        upstream_errors,
    ):
        assert module.__all__ == sorted(module.__all__)
        assert all(hasattr(module, name) for name in module.__all__)
    assert set(minillm.core.translate.__all__) >= {
        "openai_to_anthropic_request", "anthropic_to_openai_request",
        "anthropic_to_openai_response", "openai_to_anthropic_response",
        "AnthropicToOpenAIStream", "OpenAIToAnthropicStream", "StreamTranslator",
        "stream_error", "upstream_error",
    }  # fmt: skip
