"""Responses -> Chat Completions requests: Codex's shape, tools, and every 400.

Replies and streams are in ``test_translate_responses_stream.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from minillm.core.errors import BadRequest
from minillm.core.translate import (
    ResponsesPlan,
    openai_to_anthropic_request,
    responses_to_chat_request,
)

NAME_RULE = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def plan_for(**body: Any) -> ResponsesPlan:
    return responses_to_chat_request({"model": "client-model", "input": "hi", **body}, model="up")


def chat(body: dict[str, Any]) -> dict[str, Any]:
    return responses_to_chat_request(body, model="up").chat


def bad(body: dict[str, Any]) -> str:
    with pytest.raises(BadRequest) as info:
        responses_to_chat_request(body, model="up")
    return info.value.message


# --- requests ------------------------------------------------------------------------


def test_plain_request() -> None:
    assert chat({"model": "m", "input": "hi"}) == {
        "model": "up",
        "messages": [{"role": "user", "content": "hi"}],
    }
    body = {
        "model": "m", "instructions": "Be brief.", "input": "hi", "max_output_tokens": 50,
        "temperature": 0.5, "top_p": 0.9, "stream": True, "store": True, "user": "u",
        "metadata": {"a": "b"}, "truncation": "auto", "service_tier": "auto",
    }  # fmt: skip
    assert chat(body) == {
        "model": "up",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_reasoning_model() -> None:
    body = {
        "model": "m", "input": "hi", "max_output_tokens": 50, "temperature": 0.5,
        "top_p": 0.9, "reasoning": {"effort": "low", "summary": "auto"},
    }  # fmt: skip
    sent = responses_to_chat_request(body, model="up", reasoning=True).chat
    assert sent == {
        "model": "up",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 50,
        "reasoning_effort": "low",
    }
    assert "reasoning_effort" not in chat(body)  # not a reasoning model: dropped


CODEX_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function", "name": "shell_command", "description": "Runs a shell command.",
        "strict": False,
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                       "required": ["command"], "additionalProperties": False},
    },
    {
        "type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"},
    },
    {"type": "web_search", "external_web_access": False},
    {
        "type": "namespace", "name": "mcp__docs", "description": "Docs server.",
        "tools": [{"type": "function", "name": "search", "description": "Search docs.",
                   "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}],
    },
]  # fmt: skip

CODEX_REQUEST: dict[str, Any] = {
    "model": "gpt-5-codex",
    "instructions": None,
    "input": [
        {"type": "message", "role": "developer",
         "content": [{"type": "input_text", "text": "<permissions>sandboxed</permissions>"}]},
        {"type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "<environment_context/>"},
                     {"type": "input_text", "text": "list the files"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Listing."}]},
        {"type": "function_call", "call_id": "call_1", "name": "shell_command",
         "arguments": '{"command":"ls"}'},
        {"type": "function_call", "call_id": "call_2", "name": "search", "namespace": "mcp__docs",
         "arguments": '{"q":"x"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
        {"type": "function_call_output", "call_id": "call_2",
         "output": [{"type": "input_text", "text": "found"}]},
        {"type": "custom_tool_call", "call_id": "call_3", "name": "apply_patch",
         "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "call_3", "output": "Done!"},
    ],
    "tools": CODEX_TOOLS,
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "019a-session",
    "text": {"verbosity": "low"},
    "client_metadata": {"x": "y"},
}  # fmt: skip


def tool_call(id_: str, name: str, args: str) -> dict[str, Any]:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


def test_codex_shaped_request() -> None:
    plan = responses_to_chat_request(CODEX_REQUEST, model="claude-up")
    assert plan.chat["messages"] == [
        {"role": "system", "content": "<permissions>sandboxed</permissions>"},
        {"role": "user", "content": [
            {"type": "text", "text": "<environment_context/>"},
            {"type": "text", "text": "list the files"}]},
        {"role": "assistant", "content": "Listing.", "tool_calls": [
            tool_call("call_1", "shell_command", '{"command":"ls"}'),
            tool_call("call_2", "mcp__docs__search", '{"q":"x"}')]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "found"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            tool_call("call_3", "apply_patch", '{"input":"*** Begin Patch"}')]},
        {"role": "tool", "tool_call_id": "call_3", "content": "Done!"},
    ]  # fmt: skip
    tools = {t["function"]["name"]: t["function"] for t in plan.chat["tools"]}
    assert list(tools) == ["shell_command", "apply_patch", "mcp__docs__search"]
    assert tools["shell_command"]["strict"] is False
    patch = tools["apply_patch"]["parameters"]
    assert patch["required"] == ["input"] and patch["properties"]["input"]["type"] == "string"
    assert "start: begin_patch" in patch["properties"]["input"]["description"]
    assert tools["mcp__docs__search"]["description"] == "Search docs."
    assert plan.chat["tool_choice"] == "auto" and plan.chat["parallel_tool_calls"] is True
    assert plan.chat["stream_options"] == {"include_usage": True}
    assert set(plan.chat) == {
        "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "stream",
        "stream_options",
    }  # fmt: skip
    assert plan.dropped_tools == ("web_search",)
    assert plan.custom_tools == {"apply_patch"}
    assert plan.tool_names["mcp__docs__search"] == ("mcp__docs", "search")
    # the Anthropic translator accepts the result (Codex -> Claude)
    anthropic = openai_to_anthropic_request(plan.chat, model="claude", default_max_tokens=4096)
    assert anthropic["system"] == "<permissions>sandboxed</permissions>"
    assert [m["role"] for m in anthropic["messages"]] == ["user", "assistant", "user", "assistant",
                                                           "user"]  # fmt: skip
    assert [t["name"] for t in anthropic["tools"]] == list(tools)


def test_message_items_and_images() -> None:
    body = {"model": "m", "input": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "a", "annotations": []},
                     {"type": "refusal", "refusal": "b"}]},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
    ]}  # fmt: skip
    assert chat(body)["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
        {"role": "assistant", "content": "ab"},
    ]  # fmt: skip
    anthropic = openai_to_anthropic_request(chat(body), model="c", default_max_tokens=10)
    images = [b for b in anthropic["messages"][0]["content"] if b["type"] == "image"]
    assert images[1]["source"] == {"type": "base64", "media_type": "image/png", "data": "iVBO"}


def test_namespace_names_fit_the_rule_and_map_back() -> None:
    long_ns, long_name = "mcp__" + "n" * 60, "tool.with.dots"
    tools = [
        {"type": "function", "name": "ns__f"},  # collides with namespace ns, function f
        {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"},
                                                      {"type": "custom", "name": "g"}]},
        {"type": "namespace", "name": long_ns, "tools": [{"type": "function", "name": long_name}]},
    ]  # fmt: skip
    plan = plan_for(tools=tools, tool_choice={"type": "function", "name": "f", "namespace": "ns"})
    names = [t["function"]["name"] for t in plan.chat["tools"]]
    assert names[0] == "ns__f" and names[2] == "ns__g"
    assert len(set(names)) == 4 and all(NAME_RULE.fullmatch(n) for n in names)
    assert plan.tool_names[names[1]] == ("ns", "f")
    assert plan.tool_names[names[3]] == (long_ns, long_name)
    assert plan.custom_tools == {"ns__g"}
    assert plan.chat["tool_choice"] == {"type": "function", "function": {"name": names[1]}}
    again = plan_for(tools=tools)
    assert [t["function"]["name"] for t in again.chat["tools"]] == names  # deterministic
    # a call in the history of an undeclared namespaced tool gets the same rule
    history = [{"type": "function_call", "call_id": "c", "name": long_name,
                "namespace": long_ns, "arguments": "{}"}]  # fmt: skip
    flat = plan_for(input=history).chat["messages"][0]["tool_calls"][0]["function"]["name"]
    assert flat == names[3]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
        ({"type": "custom", "name": "p"}, {"type": "function", "function": {"name": "p"}}),
        (None, None),
    ],
)
def test_tool_choice(choice: object, expected: object) -> None:
    tools = [
        {"type": "function", "name": "f"}, {"type": "custom", "name": "p"},
        {"type": "web_search_preview"}, {"type": "file_search", "vector_store_ids": []},
    ]  # fmt: skip
    plan = plan_for(tools=tools, tool_choice=choice, parallel_tool_calls=False)
    assert plan.chat.get("tool_choice") == expected
    assert plan.chat["parallel_tool_calls"] is False
    assert plan.dropped_tools == ("web_search_preview", "file_search")


def test_only_builtin_tools_leave_no_tools_or_choice() -> None:
    plan = plan_for(tools=[{"type": "web_search"}, {"type": "mcp", "server_label": "x"}],
                    tool_choice="required", parallel_tool_calls=True)  # fmt: skip
    assert plan.chat == {"model": "up", "messages": [{"role": "user", "content": "hi"}]}
    assert plan.dropped_tools == ("web_search", "mcp")


def test_text_format() -> None:
    schema = {"type": "object", "properties": {}}
    fmt = {"type": "json_schema", "name": "out", "schema": schema, "strict": True}
    plan = plan_for(text={"format": fmt, "verbosity": "low"})
    assert plan.chat["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}
    }  # fmt: skip
    assert plan_for(text={"format": {"type": "json_object"}}).chat["response_format"] == {
        "type": "json_object"
    }
    assert "response_format" not in plan_for(text={"format": {"type": "text"}}).chat
    with pytest.raises(BadRequest, match=r"^response_format"):  # Anthropic cannot honour it
        openai_to_anthropic_request(plan.chat, model="c", default_max_tokens=10)


_M = {"model": "m"}
_IN = {"model": "m", "input": "x"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**_IN, "previous_response_id": "resp_1"}, "previous_response_id"),
        ({**_IN, "conversation": "conv_1"}, "conversation"),
        ({**_IN, "prompt": {"id": "pmpt_1"}}, "prompt"),
        ({**_IN, "background": True}, "background"),
        ({**_IN, "top_logprobs": 3}, "top_logprobs"),
        ({**_IN, "instructions": ["x"]}, "instructions"),
        ({**_IN, "max_output_tokens": 0}, "max_output_tokens"),
        ({**_IN, "max_output_tokens": True}, "max_output_tokens"),
        ({**_IN, "text": {"format": {"type": "xml"}}}, "text.format.type"),
        (_M, "input"),
        ({**_M, "input": []}, "input"),
        ({**_M, "input": 3}, "input"),
        ({**_M, "input": ["x"]}, "input[0]"),
        ({**_M, "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({**_M, "input": [{"type": "local_shell_call"}]}, "input[0].type"),
        ({**_M, "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        (
            {
                **_M,
                "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
            },
            "input[0].content[0].type",
        ),
        (
            {
                **_M,
                "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}],
            },
            "input[0].content[0].image_url",
        ),
        (
            {**_M, "input": [{"role": "developer", "content": [{"type": "input_image"}]}]},
            "input[0].content[0].type",
        ),
        (
            {**_M, "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        (
            {**_M, "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        (
            {**_M, "input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]},
            "input[0].name",
        ),
        (
            {**_M, "input": [{"type": "custom_tool_call", "call_id": "c", "name": "p"}]},
            "input[0].input",
        ),
        ({**_M, "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({**_IN, "tools": {"type": "function"}}, "tools"),
        ({**_IN, "tools": [{"name": "f"}]}, "tools[0].type"),
        ({**_IN, "tools": [{"type": "function"}]}, "tools[0].name"),
        (
            {**_IN, "tools": [{"type": "function", "name": "f"}, {"type": "custom", "name": "f"}]},
            "tools[1].name",
        ),
        ({**_IN, "tools": [{"type": "namespace", "tools": []}]}, "tools[0].name"),
        (
            {
                **_IN,
                "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}],
            },
            "tools[0].tools[0].type",
        ),
        ({**_IN, "tool_choice": {"type": "web_search"}}, "tool_choice"),
        (
            {**_IN, "tools": [{"type": "web_search"}], "tool_choice": {"type": "web_search"}},
            "tool_choice",
        ),
        ({**_IN, "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
        (
            {**_IN, "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}},
            "tool_choice.type",
        ),
        ({**_IN, "tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], field: str) -> None:
    assert bad(body).startswith(field + ":")


def test_forced_builtin_tool_is_named() -> None:
    assert "'web_search'" in bad({**_IN, "tool_choice": {"type": "web_search"}})
    with pytest.raises(BadRequest, match=r"^body"):
        responses_to_chat_request([], model="up")  # type: ignore[arg-type]
