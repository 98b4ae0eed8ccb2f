"""The OpenAI Responses API translated: to a Claude model and to a chat-only provider.

The official openai SDK (``responses.create`` and the strict ``responses.stream()``
helper) calls the real gateway; the fake upstream records what the provider
saw.  Providers: ``anthropic`` (Messages), ``local`` (an OpenAI-compatible server
configured with ``responses = false`` in TOML) and ``vllm`` (the same, by env).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import trio

from gateway_fixtures import gateway_env
from minillm.core.config import Config, ConfigError
from minillm.core.errors import openai_error_type, status_kind
from test_cross_format import PIXEL, assert_two_images
from test_usage import rows
from upstream import DropAfter, FakeUpstream, Raw, Reply, StallAfter, Status

CLAUDE = "claude-sonnet-4-5"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    config = tmp_path / "c.toml"
    config.write_text(
        f'[providers.local]\nbase_url = "{upstream.url}/v1"\nresponses = false\n'
        '[aliases]\nsmart = ["anthropic:claude-opus-4-1", "openai:gpt-4.1"]\n'
    )
    env = gateway_env(
        upstream.url,
        MINI_LLM_CONFIG=str(config),
        MINI_LLM_PROVIDER_VLLM_URL=f"{upstream.url}/v1",
        MINI_LLM_PROVIDER_VLLM_RESPONSES="0",
        MINI_LLM_PROVIDER_VLLM_REASONING_MODELS="gpt-5*",
        MINI_LLM_DEFAULT_MAX_TOKENS="777",
        MINI_LLM_USAGE_DB=str(tmp_path / "u.db"),
    )
    return await start_gateway(env)


def oai(gw: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="client", base_url=f"{gw}/v1", max_retries=0)


def anthropic_sse(*events: dict[str, Any]) -> Raw:
    body = b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )
    return Raw(200, body, "text/event-stream")


def tool_use_events(calls: list[tuple[str, str, list[str]]]) -> list[dict[str, Any]]:
    """A Messages stream with one ``tool_use`` block per (id, name, argument fragments)."""
    message = {
        "id": "msg_par", "type": "message", "role": "assistant", "model": CLAUDE,
        "content": [], "stop_reason": None, "usage": {"input_tokens": 12, "output_tokens": 1},
    }  # fmt: skip
    events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
    for i, (call_id, name, fragments) in enumerate(calls):
        block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        events.append({"type": "content_block_start", "index": i, "content_block": block})
        events += [
            {"type": "content_block_delta", "index": i,
             "delta": {"type": "input_json_delta", "partial_json": f}}
            for f in fragments
        ]  # fmt: skip
        events.append({"type": "content_block_stop", "index": i})
    stop = {"stop_reason": "tool_use", "stop_sequence": None}
    events += [
        {"type": "message_delta", "delta": stop, "usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    ]
    return events


# -- to a Claude model ------------------------------------------------------------------------


async def test_plain_to_claude(gw: str, upstream: FakeUpstream) -> None:
    response = await oai(gw).responses.create(
        model=CLAUDE,
        instructions="Be brief.",
        input="hello claude",
        max_output_tokens=50,
        temperature=0.5,
    )
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "echo: hello claude"
    assert response.model == CLAUDE
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 5)
    seen = upstream.requests[-1]
    assert seen.path == "/v1/messages"
    assert seen.json["system"] == "Be brief."
    assert [m["role"] for m in seen.json["messages"]] == ["user"]
    assert "hello claude" in json.dumps(seen.json["messages"][0]["content"])
    assert (seen.json["max_tokens"], seen.json["temperature"]) == (50, 0.5)


async def test_stream_helper_to_claude(gw: str, upstream: FakeUpstream) -> None:
    async with oai(gw).responses.stream(model=CLAUDE, input="stream me please") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: stream me please"
    assert final.usage is not None and final.usage.output_tokens == 5
    assert upstream.requests[-1].json["max_tokens"] == 777  # the default, when not asked


async def test_tools_over_two_turns_to_claude(gw: str, upstream: FakeUpstream) -> None:
    client = oai(gw)
    upstream.push(Reply(tool_call=("get_weather", {"city": "Paris"})))
    first = await client.responses.create(
        model=CLAUDE, input="weather in Paris?", tools=[WEATHER], tool_choice="required"
    )
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    sent = upstream.requests[-1].json
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}
    second = await client.responses.create(
        model=CLAUDE,
        input=[
            {"role": "user", "content": "weather in Paris?"},
            call.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
        ],
        tools=[WEATHER],
    )
    assert second.output_text
    messages = upstream.requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][-1] == {
        "type": "tool_use", "id": call.call_id, "name": "get_weather", "input": {"city": "Paris"}
    }  # fmt: skip
    result = messages[2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == call.call_id


async def test_parallel_tool_calls_streamed_from_claude(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(
        anthropic_sse(
            *tool_use_events([
                ("toolu_1", "get_weather", ['{"city":', ' "Paris"}']),
                ("toolu_2", "get_weather", ['{"city": "Rome"}']),
            ])
        )
    )  # fmt: skip
    async with oai(gw).responses.stream(
        model=CLAUDE, input="Paris and Rome?", tools=[WEATHER], parallel_tool_calls=True
    ) as stream:
        final = await stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, json.loads(c.arguments)) for c in calls] == [
        ("toolu_1", {"city": "Paris"}),
        ("toolu_2", {"city": "Rome"}),
    ]
    assert "disable_parallel_tool_use" not in json.dumps(upstream.requests[-1].json)


async def test_namespace_tool_to_claude(gw: str, upstream: FakeUpstream) -> None:
    namespace: Any = {
        "type": "namespace",
        "name": "files",
        "description": "The project's files",
        "tools": [{**WEATHER, "name": "read", "description": "Read a file"}],
    }
    upstream.push(Reply(tool_call=("files__read", {"city": "README.md"})))
    response = await oai(gw).responses.create(model=CLAUDE, input="read it", tools=[namespace])
    sent = upstream.requests[-1].json["tools"]
    assert [t["name"] for t in sent] == ["files__read"]
    item = response.output[0].model_dump()
    assert (item["type"], item["name"], item["namespace"]) == ("function_call", "read", "files")


async def test_images_to_claude(gw: str, upstream: FakeUpstream) -> None:
    await oai(gw).responses.create(
        model=CLAUDE,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
                    {"type": "input_image", "image_url": "https://example.com/cat.jpg"},
                ],
            }
        ],  # type: ignore[typeddict-item]
    )
    assert_two_images(upstream.requests[-1].json["messages"][0]["content"])


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (429, openai.RateLimitError),
        (529, openai.InternalServerError),
    ],
)
async def test_claude_errors_in_the_openai_shape(
    gw: str, upstream: FakeUpstream, status: int, error: type[openai.APIStatusError]
) -> None:
    wait = "7" if status == 429 else "0"  # 529 is retried: at once
    upstream.push(*[Status(status, headers={"retry-after": wait})] * 3)
    with pytest.raises(error) as exc:
        async with oai(gw).responses.stream(model=CLAUDE, input="x") as stream:
            await stream.get_final_response()
    assert exc.value.status_code == status
    assert isinstance(exc.value.body, dict) and isinstance(exc.value.body["message"], str)
    assert exc.value.body["type"] == openai_error_type(status_kind(status))
    if status == 429:
        assert exc.value.response.headers["retry-after"] == "7"
    else:
        assert exc.value.body["message"] == f"fake upstream error {status}"


@pytest.mark.parametrize("model", [CLAUDE, "local:llama-3"])
async def test_upstream_cut_mid_stream_ends_with_an_error_event(
    gw: str, upstream: FakeUpstream, model: str
) -> None:
    upstream.push(DropAfter(2))
    seen: list[str] = []
    with pytest.raises(openai.APIError) as exc:
        async with oai(gw).responses.stream(model=model, input="x") as stream:
            async for event in stream:
                seen.append(event.type)
    assert exc.value.message == "Provider unavailable"
    assert seen[0] == "response.created"  # the answer had started


@pytest.mark.parametrize("model", [CLAUDE, "local:llama-3"])
async def test_upstream_stream_without_its_finish_is_a_failure(
    gw: str, upstream: FakeUpstream, tmp_path: Path, model: str
) -> None:
    if model == CLAUDE:  # no message_delta, no message_stop
        upstream.push(anthropic_sse(*tool_use_events([("toolu_1", "get_weather", ['{"c'])])[:-2]))
    else:  # no finish_reason, no [DONE]
        chunk = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": None}],
        }
        upstream.push(Raw(200, b"data: " + orjson.dumps(chunk) + b"\n\n", "text/event-stream"))
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="ended before it finished"):
        async with oai(gw).responses.stream(model=model, input="x") as stream:
            async for event in stream:
                seen.append(event.type)
    assert seen[0] == "response.created" and "response.completed" not in seen
    assert [r["status"] for r in await rows(tmp_path / "u.db", 1)] == [502]


async def test_gateway_stream_errors_are_numbered_in_sequence(
    upstream: FakeUpstream,
    start_gateway,  # type: ignore[no-untyped-def]
) -> None:
    env = gateway_env(
        upstream.url,
        MINI_LLM_PROVIDER_VLLM_URL=f"{upstream.url}/v1",
        MINI_LLM_PROVIDER_VLLM_RESPONSES="0",
        MINI_LLM_STREAM_IDLE_TIMEOUT="0.5",
    )
    gw = await start_gateway(env)
    upstream.push(StallAfter(3))
    body = {"model": "vllm:llama-3", "input": "x", "stream": True}
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(f"{gw}/v1/responses", json=body)
    events = [orjson.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


async def test_translated_calls_are_counted(
    gw: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.push(Reply(usage=(40, 9)), Reply(usage=(50, 6)))
    async with oai(gw).responses.stream(model=CLAUDE, input="a") as stream:
        await stream.get_final_response()
    await oai(gw).responses.create(model="local:llama-3", input="b")
    got = await rows(tmp_path / "u.db", 2)
    assert [(r["provider"], r["input_tokens"], r["output_tokens"]) for r in got] == [
        ("anthropic", 40, 9),
        ("local", 50, 6),
    ]
    assert {r["client_format"] for r in got} == {"responses"}


async def test_refused_field_is_a_400_naming_it(gw: str, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        await oai(gw).responses.create(model=CLAUDE, input="x", previous_response_id="resp_1")
    assert "previous_response_id" in exc.value.message
    assert upstream.requests == []


async def test_codex_shaped_request_to_claude(
    gw: str, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "minillm.access")
    shell: Any = {**WEATHER, "name": "exec_command", "description": "Run a command"}
    body: dict[str, Any] = {
        "model": CLAUDE,
        "instructions": None,
        "input": [
            {"type": "message", "role": "developer",
             "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "list the files"}]},
        ],
        "tools": [
            shell,
            {"type": "namespace", "name": "mcp__fs", "description": "files", "tools": [shell]},
            {"type": "web_search", "external_web_access": False},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a-session",
    }  # fmt: skip
    body.pop("instructions")
    response = await oai(gw).responses.with_raw_response.create(**body)
    assert response.headers["x-minillm-dropped-tools"] == "web_search"
    events = [e async for e in response.parse()]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == "echo: list the files"
    sent = upstream.requests[-1].json
    assert sent["system"] == "You are Codex."
    assert [t["name"] for t in sent["tools"]] == ["exec_command", "mcp__fs__exec_command"]
    assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    for dropped in ("store", "include", "reasoning", "prompt_cache_key"):
        assert dropped not in sent
    with trio.fail_after(2):
        while "dropped_tools=web_search" not in caplog.text:
            await trio.sleep(0.01)


async def test_claude_fallback_to_gpt(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(*[Status(529)] * 3)  # the first target, with its retries
    raw = await oai(gw).responses.with_raw_response.create(model="smart", input="hi")
    assert raw.headers["x-minillm-target"] == "openai:gpt-4.1"
    assert raw.parse().output_text == "echo: hi"
    assert [r.path for r in upstream.requests][-2:] == ["/v1/messages", "/v1/responses"]


# -- to an OpenAI-compatible provider without the Responses API -----------------------------------


@pytest.mark.parametrize("provider", ["local", "vllm"])
async def test_chat_only_provider(gw: str, upstream: FakeUpstream, provider: str) -> None:
    client = oai(gw)
    response = await client.responses.create(
        model=f"{provider}:llama-3", instructions="Be brief.", input="hello llama"
    )
    assert response.output_text == "echo: hello llama"
    seen = upstream.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.json["model"] == "llama-3"
    assert seen.json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello llama"},
    ]
    async with client.responses.stream(model=f"{provider}:llama-3", input="stream") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "echo: stream"
    assert final.usage is not None and final.usage.input_tokens == 10
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}


async def test_reasoning_model_of_a_chat_only_provider(gw: str, upstream: FakeUpstream) -> None:
    response = await oai(gw).responses.create(
        model="vllm:gpt-5.1", input="think", max_output_tokens=500, temperature=0.3,
        reasoning={"effort": "low"},
    )  # fmt: skip
    assert response.output_text == "echo: think"
    body = upstream.requests[-1].json
    keys = ("max_tokens", "max_completion_tokens", "temperature", "reasoning_effort")
    assert {k: body[k] for k in keys if k in body} == {
        "max_completion_tokens": 500,
        "reasoning_effort": "low",
    }


async def test_tool_call_from_chat_only_provider(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(Reply(tool_call=("get_weather", {"city": "Oslo"})))
    async with oai(gw).responses.stream(
        model="local:llama-3", input="weather?", tools=[WEATHER]
    ) as stream:
        final = await stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}
    assert upstream.requests[-1].json["tools"][0]["function"]["name"] == "get_weather"


def test_responses_setting() -> None:
    env = {"MINI_LLM_PROVIDER_X_URL": "http://127.0.0.1:1/v1"}
    assert Config.load(env).providers["x"].responses is True
    assert (
        Config.load({**env, "MINI_LLM_PROVIDER_X_RESPONSES": "false"}).providers["x"].responses
        is False
    )
    assert Config.load({}).providers["mock"].responses is False
    with pytest.raises(ConfigError, match="MINI_LLM_PROVIDER_X_RESPONSES"):
        Config.load({**env, "MINI_LLM_PROVIDER_X_RESPONSES": "maybe"})


def test_responses_setting_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[providers.x]\nbase_url = "http://127.0.0.1:1/v1"\nresponses = "no"\n')
    with pytest.raises(ConfigError, match=r"\[providers.x\] responses: expected true or false"):
        Config.load({}, config_file=path)


# -- offline: the built-in mock ---------------------------------------------------------------


async def test_offline_mock_serves_responses(start_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway({"MINI_LLM_MOCK_DELAY": "0"})
    client = oai(gw)
    response = await client.responses.create(model="gpt-4o", input="hi mock")
    assert response.output_text == "You said: hi mock"
    async with client.responses.stream(model="claude-x", input="stream, mock") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "You said: stream, mock"
