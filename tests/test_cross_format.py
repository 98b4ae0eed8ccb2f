"""Any client format reaches any provider: the official SDKs, translated both ways.

The fake upstream records what it received, so each test checks both sides: the
translated request the provider saw, and the SDK's own parsed result.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import orjson
import pytest

from gateway_fixtures import gateway_env
from upstream import FakeUpstream, Raw, Reply, Status

CLAUDE = "claude-sonnet-4-5"
GPT = "gpt-4.1"
WEATHER_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PIXEL = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway) -> str:  # type: ignore[no-untyped-def]
    return await start_gateway(gateway_env(upstream.url, MINI_LLM_DEFAULT_MAX_TOKENS="777"))


def oai(gw: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="client", base_url=f"{gw}/v1", max_retries=0)


def ant(gw: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="client", base_url=gw, max_retries=0)


# -- OpenAI SDK -> Claude -------------------------------------------------------------------


async def test_openai_sdk_plain_to_claude(gw: str, upstream: FakeUpstream) -> None:
    completion = await oai(gw).chat.completions.create(
        model=CLAUDE,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello claude"},
        ],
        stop=["END"],
        temperature=0.5,
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "echo: hello claude"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 10
    seen = upstream.requests[-1]
    assert seen.path == "/v1/messages"
    assert seen.json["system"] == "Be brief."
    assert [m["role"] for m in seen.json["messages"]] == ["user"]
    assert seen.json["max_tokens"] == 777
    assert seen.json["stop_sequences"] == ["END"]
    assert seen.json["model"] == CLAUDE


async def test_openai_sdk_stream_helper_to_claude(gw: str) -> None:
    async with oai(gw).chat.completions.stream(
        model=CLAUDE,
        messages=[{"role": "user", "content": "stream me please"}],
        stream_options={"include_usage": True},
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "echo: stream me please"
    assert final.usage is not None and final.usage.completion_tokens == 5


async def test_openai_sdk_tool_calls_two_turns_to_claude(gw: str, upstream: FakeUpstream) -> None:
    client = oai(gw)
    upstream.push(Reply(tool_call=("get_weather", {"city": "Paris"})))
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Paris?"}]
    first = await client.chat.completions.create(
        model=CLAUDE,
        messages=messages,
        tools=[WEATHER_OPENAI],
        tool_choice="required",  # type: ignore[arg-type,list-item]
    )
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert upstream.requests[-1].json["tool_choice"] == {"type": "any"}
    assert upstream.requests[-1].json["tools"][0]["input_schema"]["properties"] == {
        "city": {"type": "string"}
    }
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    second = await client.chat.completions.create(
        model=CLAUDE,
        messages=messages,
        tools=[WEATHER_OPENAI],  # type: ignore[arg-type,list-item]
    )
    assert second.choices[0].message.content is not None
    sent = upstream.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][-1] == {
        "type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}
    }  # fmt: skip
    assert sent[2]["content"][0]["type"] == "tool_result"
    assert sent[2]["content"][0]["tool_use_id"] == call.id


async def test_openai_sdk_streamed_tool_call_from_claude(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(Reply(tool_call=("get_weather", {"city": "Oslo", "days": 3})))
    async with oai(gw).chat.completions.stream(
        model=CLAUDE,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_OPENAI],  # type: ignore[list-item]
    ) as stream:
        final = await stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"city": "Oslo", "days": 3}
    assert final.choices[0].finish_reason == "tool_calls"


async def test_openai_sdk_images_to_claude(gw: str, upstream: FakeUpstream) -> None:
    await oai(gw).chat.completions.create(
        model=CLAUDE,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            }
        ],
    )
    assert_two_images(upstream.requests[-1].json["messages"][0]["content"])


def assert_two_images(blocks: list[dict[str, object]]) -> None:
    """Anthropic blocks 1 and 2: ``PIXEL`` as base64, then the cat by URL."""
    assert blocks[1] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}
    }  # fmt: skip
    assert blocks[2] == {
        "type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}
    }  # fmt: skip


async def test_openai_sdk_unsupported_option_is_400(gw: str, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        await oai(gw).chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": "x"}], n=3
        )
    assert "n" in exc.value.message
    assert upstream.requests == []


async def test_anthropic_overload_is_an_openai_error(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(*[Status(529)] * 3)
    with pytest.raises(openai.InternalServerError) as exc:
        await oai(gw).chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": "x"}]
        )
    body = exc.value.body
    assert isinstance(body, dict) and "message" in body


# -- Anthropic SDK -> GPT ---------------------------------------------------------------------


async def test_anthropic_sdk_plain_to_gpt(gw: str, upstream: FakeUpstream) -> None:
    message = await ant(gw).messages.create(
        model=GPT,
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello gpt"}],
        metadata={"user_id": "u-42"},
        extra_body={"top_k": 5},
    )
    assert message.type == "message"
    assert message.content[0].text == "echo: hello gpt"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 10 and message.usage.output_tokens == 5
    seen = upstream.requests[-1].json
    assert upstream.requests[-1].path == "/v1/chat/completions"
    assert seen["messages"][0] == {"role": "system", "content": "Be brief."}
    assert seen["user"] == "u-42"
    assert "top_k" not in seen


async def test_anthropic_sdk_stream_to_gpt(gw: str, upstream: FakeUpstream) -> None:
    async with ant(gw).messages.stream(
        model=GPT, max_tokens=64, messages=[{"role": "user", "content": "stream it"}]
    ) as stream:
        texts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "echo: stream it"
    assert final.content[0].text == "echo: stream it"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 5
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}


def openai_sse(*deltas: dict[str, Any], finish: str | None = "tool_calls") -> Raw:
    """A chat stream: one chunk per delta, then the finish (if any); no ``[DONE]``."""
    chunks = [{"index": 0, "delta": d, "finish_reason": None} for d in deltas]
    chunks += [{"index": 0, "delta": {}, "finish_reason": finish}] if finish else []
    body = b"".join(
        b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1,
                                  "model": GPT, "choices": [c]}) + b"\n\n"
        for c in chunks
    )  # fmt: skip
    return Raw(200, body, "text/event-stream")


def call_delta(arguments: str, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": 0, "function": {"arguments": arguments}}
    if name:
        call.update(id="call_1", type="function", function={"name": name, "arguments": arguments})
    return {"tool_calls": [call]}


async def test_anthropic_sdk_gets_invalid_tool_arguments_as_raw(
    gw: str, upstream: FakeUpstream
) -> None:
    upstream.push(openai_sse(call_delta('{"city": "Ro', "get_weather"), call_delta("me")))
    async with ant(gw).messages.stream(
        model=GPT, max_tokens=64, messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use" and block.input == {"_raw": '{"city": "Rome'}
    assert final.stop_reason == "tool_use"


async def test_anthropic_sdk_sees_a_cut_stream_as_an_error(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(openai_sse({"content": "half an ans"}, finish=None))
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError, match="ended before it finished"):
        async with ant(gw).messages.stream(
            model=GPT, max_tokens=64, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            async for text in stream.text_stream:
                texts.append(text)
    assert texts == ["half an ans"]


async def test_openai_sdk_sees_a_cut_passthrough_stream_as_an_error(
    gw: str, upstream: FakeUpstream
) -> None:
    upstream.push(openai_sse({"content": "half an ans"}, finish=None))
    stream = await oai(gw).chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": "x"}], stream=True
    )
    texts: list[str | None] = []
    with pytest.raises(openai.APIError, match="ended before it finished"):
        async for chunk in stream:
            texts.extend(c.delta.content for c in chunk.choices)
    assert texts == ["half an ans"]


async def test_anthropic_sdk_tool_use_two_turns_to_gpt(gw: str, upstream: FakeUpstream) -> None:
    client = ant(gw)
    upstream.push(Reply(tool_call=("get_weather", {"city": "Rome"})))
    messages: list[dict[str, object]] = [{"role": "user", "content": "weather in Rome?"}]
    async with client.messages.stream(
        model=GPT,
        max_tokens=64,
        messages=messages,
        tools=[WEATHER_ANTHROPIC],  # type: ignore[arg-type,list-item]
    ) as stream:
        first = await stream.get_final_message()
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Rome"}  # type: ignore[union-attr]
    assert upstream.requests[-1].json["tools"][0]["function"]["name"] == "get_weather"
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "cloudy"}  # type: ignore[union-attr]
            ],
        },
    ]
    second = await client.messages.create(
        model=GPT,
        max_tokens=64,
        messages=messages,
        tools=[WEATHER_ANTHROPIC],  # type: ignore[arg-type,list-item]
    )
    assert second.content
    sent = upstream.requests[-1].json["messages"]
    assert sent[1]["role"] == "assistant"
    assert sent[1]["tool_calls"][0]["id"] == use.id  # type: ignore[union-attr]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Rome"}
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "cloudy"}  # type: ignore[union-attr]


async def test_openai_rate_limit_is_an_anthropic_error(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(Status(429, headers={"retry-after": "3"}))
    with pytest.raises(anthropic.RateLimitError) as exc:
        await ant(gw).messages.create(
            model=GPT, max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert exc.value.body["type"] == "error"  # type: ignore[index]
    assert exc.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


CLAUDE_CODE_BETAS = (
    "claude-code-20250219,context-management-2025-06-27,advanced-tool-use-2025-11-20"
)
CACHED = {"cache_control": {"type": "ephemeral"}}
BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
DEFERRED = {
    "name": "DeferredToolPlaceholder",
    "description": "never call this tool",
    "input_schema": {"type": "object", "properties": {}},
    "defer_loading": True,
}


async def test_claude_code_shaped_request_to_gpt(gw: str, upstream: FakeUpstream) -> None:
    """Claude Code 2.1.x's request, streamed, over a tool round trip, to a reasoning GPT model."""
    client = ant(gw)
    user_id = '{"device_id":"7c0e0935","account_uuid":"","session_id":"b45a14db"}'
    messages: list[dict[str, object]] = [
        {"role": "user", "content": [{"type": "text", "text": "run echo hi", **CACHED}]},
        {"role": "system", "content": [{"type": "text", "text": "# Environment", **CACHED}]},
    ]
    shape: dict[str, object] = {
        "model": "gpt-5.1",
        "max_tokens": 32000,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328;"},
            {"type": "text", "text": "You are an agent.", **CACHED},
        ],
        "tools": [BASH, DEFERRED],
        "metadata": {"user_id": user_id},
        "extra_headers": {"anthropic-beta": CLAUDE_CODE_BETAS},
        "extra_body": {
            "thinking": {"type": "adaptive", "display": "omitted"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "output_config": {"effort": "high"},
        },
    }
    upstream.push(Reply(tool_call=("Bash", {"command": "echo hi"})))
    async with client.messages.stream(messages=messages, **shape) as stream:  # type: ignore[arg-type]
        first = await stream.get_final_message()
    use = next(b for b in first.content if b.type == "tool_use")
    assert first.stop_reason == "tool_use"
    assert use.name == "Bash" and use.input == {"command": "echo hi"}  # type: ignore[union-attr]
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "hi", **CACHED}  # type: ignore[union-attr]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [result]},
    ]
    upstream.push(Reply(text="it printed hi"))
    async with client.messages.stream(messages=messages, **shape) as stream:  # type: ignore[arg-type]
        texts = [t async for t in stream.text_stream]
        second = await stream.get_final_message()
    assert "".join(texts) == "it printed hi" and second.stop_reason == "end_turn"

    for seen in upstream.requests[-2:]:
        assert seen.path == "/v1/chat/completions"
        assert "anthropic-beta" not in seen.headers
        body = seen.json
        assert set(body) == {
            "model", "messages", "max_completion_tokens", "reasoning_effort", "user", "tools",
            "stream", "stream_options",
        }  # fmt: skip
        assert body["max_completion_tokens"] == 32000 and body["reasoning_effort"] == "high"
        assert len(body["user"]) == 64 and "device_id" not in body["user"]
        assert [t["function"]["name"] for t in body["tools"]] == ["Bash"]
        assert "cache_control" not in json.dumps(body)
        assert [m["role"] for m in body["messages"][:3]] == ["system", "user", "system"]
        assert body["messages"][2] == {"role": "system", "content": "# Environment"}
    assert upstream.requests[-1].json["messages"][-1] == {
        "role": "tool",
        "tool_call_id": use.id,  # type: ignore[union-attr]
        "content": "hi",
    }


async def test_translated_replies_name_the_model_asked_for_plain_and_streamed(gw: str) -> None:
    asked = f"anthropic:{CLAUDE}"  # the provider is asked for CLAUDE
    messages: list[Any] = [{"role": "user", "content": "x"}]
    plain = await oai(gw).chat.completions.create(model=asked, messages=messages)
    chunks = [c async for c in await oai(gw).chat.completions.create(
        model=asked, messages=messages, stream=True
    )]  # fmt: skip
    assert plain.model == asked and {c.model for c in chunks} == {asked}
    asked = f"openai:{GPT}"
    message = await ant(gw).messages.create(model=asked, max_tokens=8, messages=messages)
    async with ant(gw).messages.stream(model=asked, max_tokens=8, messages=messages) as stream:
        streamed = await stream.get_final_message()
    assert message.model == asked and streamed.model == asked
