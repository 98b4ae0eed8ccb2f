"""The offline ``mock`` provider, through httpx and the official openai SDK."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
import trio
import trio.testing
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageFunctionToolCall,
)

from minillm.runtime.providers.mock import MOCK_MODELS, MockTransport

BASE = "http://mock.invalid/v1"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "note": {"type": "string"},
            },
            "required": ["city", "days", "metric", "unit"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "limit": {"anyOf": [{"type": "number"}, {"type": "null"}]},
                "filters": {"type": "object", "properties": {"lang": {"type": ["string", "null"]}}},
            },
        },
    },
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=MockTransport(chunk_delay=0), base_url=BASE) as c:
        yield c


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def chat(client: httpx.AsyncClient, **body: Any) -> ChatCompletion:
    response = await client.post("/chat/completions", json={"model": "mock-1", **body})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return ChatCompletion.model_validate(response.json())


async def stream(client: httpx.AsyncClient, **body: Any) -> list[ChatCompletionChunk]:
    """POST a streamed request; check the SSE framing; return the parsed chunks."""
    request = {"model": "mock-1", "stream": True, **body}
    async with client.stream("POST", "/chat/completions", json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        raw = (await response.aread()).decode()
    assert raw.endswith("\n\n")
    events = raw[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    assert events[-1] == "data: [DONE]"
    return [ChatCompletionChunk.model_validate_json(e[6:]) for e in events[:-1]]


def function_calls(message: ChatCompletionMessage) -> list[ChatCompletionMessageFunctionToolCall]:
    calls = message.tool_calls or []
    assert all(isinstance(c, ChatCompletionMessageFunctionToolCall) for c in calls)
    return [c for c in calls if isinstance(c, ChatCompletionMessageFunctionToolCall)]


def streamed_text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_plain_reply_echoes_last_user_message(client: httpx.AsyncClient) -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        user("first"),
        {"role": "assistant", "content": "ok"},
        user("hello there, mock"),
    ]
    completion = await chat(client, model="my-model", messages=messages)
    assert completion.object == "chat.completion"
    assert completion.model == "my-model"
    assert completion.id.startswith("chatcmpl-")
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: hello there, mock"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    # 7 words of prompt text -> 9 tokens; 5 words of reply -> 7 tokens
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 7)
    assert completion.usage.total_tokens == 16


async def test_text_parts_and_greeting(client: httpx.AsyncClient) -> None:
    parts = [{"type": "text", "text": "one"}, {"type": "image_url", "image_url": {"url": "x"}}]
    parts.append({"type": "text", "text": "two"})
    completion = await chat(client, messages=[user(parts)])
    assert completion.choices[0].message.content == "You said: one two"
    completion = await chat(client, messages=[{"role": "system", "content": "hi"}])
    assert (completion.choices[0].message.content or "").startswith("Hello!")


async def test_replies_are_deterministic(client: httpx.AsyncClient) -> None:
    body = {"messages": [user("call the get_weather tool")], "tools": [WEATHER]}
    first, second = await chat(client, **body), await chat(client, **body)
    assert first.choices == second.choices
    assert first.usage == second.usage
    assert first.id != second.id


async def test_stream_text(client: httpx.AsyncClient) -> None:
    text = "the quick brown fox jumps"
    chunks = await stream(client, messages=[user(text)], stream_options={"include_usage": True})
    first, *middle, final, usage = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert len(middle) == len(f"You said: {text}".split())
    assert all(c.choices[0].finish_reason is None for c in [first, *middle])
    assert streamed_text(chunks) == f"You said: {text}"
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].delta.content is None
    assert usage.choices == []
    assert usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (7, 9)
    assert all(c.object == "chat.completion.chunk" and c.model == "mock-1" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    plain = await chat(client, messages=[user(text)])
    assert plain.usage == usage.usage


async def test_stream_without_usage_and_long_reply(client: httpx.AsyncClient) -> None:
    chunks = await stream(client, messages=[user(" ".join(["word"] * 500))])
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices and c.usage is None for c in chunks)
    assert len(chunks) <= 64 + 2  # grouped into at most 64 content deltas
    assert streamed_text(chunks) == "You said: " + " ".join(["word"] * 500)


async def test_tool_call_when_a_tool_is_mentioned(client: httpx.AsyncClient) -> None:
    completion = await chat(
        client, messages=[user("weather in Paris? use get_weather")], tools=[SEARCH, WEATHER]
    )
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = function_calls(choice.message)
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    args = orjson.loads(call.function.arguments)
    text = "weather in Paris? use get_weather"
    assert args == {"city": text, "days": 1, "metric": True, "unit": "celsius"}


@pytest.mark.parametrize(
    ("text", "choice", "expected"),
    [
        ("please use a tool", "auto", "search"),  # "tool": the first one
        ("look it up with get_weather", None, "get_weather"),
        ("no calls wanted", "required", "search"),
        ("mention get_weather", "required", "get_weather"),
        ("anything", {"type": "function", "function": {"name": "get_weather"}}, "get_weather"),
        ("plain chat", "auto", None),
        ("use the get_weather tool", "none", None),
        ("toolbox and get_weathers are not names", "auto", None),
    ],
)
async def test_tool_choice(
    client: httpx.AsyncClient, text: str, choice: Any, expected: str | None
) -> None:
    body: dict[str, Any] = {"messages": [user(text)], "tools": [SEARCH, WEATHER]}
    if choice is not None:
        body["tool_choice"] = choice
    message = (await chat(client, **body)).choices[0].message
    if expected is None:
        assert message.tool_calls is None
        assert message.content == f"You said: {text}"
    else:
        assert [c.function.name for c in function_calls(message)] == [expected]


async def test_arguments_follow_the_schema(client: httpx.AsyncClient) -> None:
    completion = await chat(client, messages=[user("search for cats")], tools=[SEARCH])
    (call,) = function_calls(completion.choices[0].message)
    args = orjson.loads(call.function.arguments)
    text = "search for cats"
    assert args == {"query": text, "tags": [text], "limit": 1, "filters": {"lang": text}}


async def test_tool_result_gets_a_text_reply(client: httpx.AsyncClient) -> None:
    messages: list[dict[str, Any]] = [user("what is the weather? use get_weather")]
    first = await chat(client, messages=messages, tools=[WEATHER])
    (call,) = function_calls(first.choices[0].message)
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    second = await chat(client, messages=messages, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Tool get_weather returned: sunny, 21C"
    assert second.usage is not None
    assert second.usage.prompt_tokens > first.usage.prompt_tokens  # type: ignore[union-attr]


async def test_stream_tool_call(client: httpx.AsyncClient) -> None:
    body = {"messages": [user("use get_weather for Oslo")], "tools": [WEATHER]}
    chunks = await stream(client, **body)
    first, start, *fragments, final = chunks
    assert first.choices[0].delta.role == "assistant"
    (head,) = start.choices[0].delta.tool_calls or []
    assert head.index == 0
    assert head.id is not None
    assert head.type == "function"
    assert head.function is not None
    assert head.function.name == "get_weather"
    assert len(fragments) >= 2
    pieces = [(c.choices[0].delta.tool_calls or [])[0] for c in fragments]
    assert all(p.id is None and p.function and p.function.name is None for p in pieces)
    arguments = "".join(p.function.arguments or "" for p in pieces if p.function)
    assert final.choices[0].finish_reason == "tool_calls"
    (call,) = function_calls((await chat(client, **body)).choices[0].message)
    assert (head.id, arguments) == (call.id, call.function.arguments)


async def test_max_tokens_truncates(client: httpx.AsyncClient) -> None:
    messages = [user("one two three four")]
    completion = await chat(client, messages=messages, max_tokens=3)
    assert completion.choices[0].message.content == "You said: one"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4
    completion = await chat(client, messages=messages, max_completion_tokens=6, max_tokens=1)
    assert completion.choices[0].finish_reason == "stop"  # 6 words fit exactly
    chunks = await stream(client, messages=messages, max_tokens=2)
    assert streamed_text(chunks) == "You said:"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_embeddings(client: httpx.AsyncClient) -> None:
    response = await client.post("/embeddings", json={"model": "e", "input": ["a b", "c", "a b"]})
    result = CreateEmbeddingResponse.model_validate(response.json())
    assert result.object == "list"
    assert result.model == "e"
    assert [d.index for d in result.data] == [0, 1, 2]
    first, second, third = (d.embedding for d in result.data)
    assert len(first) == 8
    assert first == third != second
    assert math.isclose(sum(v * v for v in first), 1.0)
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (7, 7)  # 3 + 1 + 3

    response = await client.post("/embeddings", json={"input": "a b", "dimensions": 3})
    single = CreateEmbeddingResponse.model_validate(response.json())
    assert len(single.data) == 1
    assert len(single.data[0].embedding) == 3
    response = await client.post("/embeddings", json={"input": "a b", "encoding_format": "base64"})
    packed = response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(packed))
    assert decoded == pytest.approx(first, rel=1e-6)
    response = await client.post("/embeddings", json={"input": [[1, 2, 3], [4]]})
    assert len(CreateEmbeddingResponse.model_validate(response.json()).data) == 2


async def test_models(client: httpx.AsyncClient) -> None:
    response = await client.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    models = [Model.model_validate(m) for m in body["data"]]
    assert [m.id for m in models] == list(MOCK_MODELS)
    assert {"mock-1", "mock-echo"} <= set(MOCK_MODELS)


def assert_openai_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    return str(error["type"])


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/completions"), ("GET", "/chat/completions"), ("POST", "/models"), ("GET", "/")],
)
async def test_unknown_endpoint_is_404(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={})
    assert assert_openai_error(response, 404) == "not_found_error"
    assert "mock.invalid" not in response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/completions", b"{not json"),
        ("/chat/completions", b"[]"),
        ("/chat/completions", b'{"model": "m"}'),
        ("/chat/completions", b'{"messages": []}'),
        ("/chat/completions", b'{"messages": ["hi"]}'),
        ("/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}'),
        (
            "/chat/completions",
            b'{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function",'
            b' "function": {"name": "a"}}], "tool_choice": {"function": {"name": "b"}}}',
        ),
        ("/embeddings", b'{"input": []}'),
        ("/embeddings", b'{"input": {"a": 1}}'),
        ("/embeddings", b'{"input": "x", "encoding_format": "int8"}'),
        ("/embeddings", b'{"input": "x", "dimensions": 0}'),
    ],
)
async def test_bad_request_is_400(client: httpx.AsyncClient, path: str, body: bytes) -> None:
    response = await client.post(path, content=body)
    assert assert_openai_error(response, 400) == "invalid_request_error"


async def test_any_base_url(client: httpx.AsyncClient) -> None:
    transport = MockTransport(chunk_delay=0)
    async with httpx.AsyncClient(transport=transport, base_url="http://x/api/openai/v1/") as c:
        response = await c.post("chat/completions/", json={"messages": [user("hi")]})
    assert response.json()["choices"][0]["message"]["content"] == "You said: hi"


async def test_chunk_delay_between_chunks(autojump_clock: trio.testing.MockClock) -> None:
    transport = MockTransport(chunk_delay=0.5)
    body = {"messages": [user("a b c")], "stream": True}
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        start = trio.current_time()
        async with c.stream("POST", "/chat/completions", json=body) as response:
            times = [trio.current_time() - start async for _ in response.aiter_raw()]
    # role, 5 words, finish, [DONE]: no wait before the first chunk
    assert times == [0.5 * i for i in range(8)]


async def test_closing_early_stops_the_stream() -> None:
    transport = MockTransport(chunk_delay=0)
    body = orjson.dumps({"messages": [user("one two three four five")], "stream": True})
    request = httpx.Request("POST", f"{BASE}/chat/completions", content=body)
    response = await transport.handle_async_request(request)
    stream = response.stream
    got = []
    async for frame in stream:  # type: ignore[union-attr]
        got.append(frame)
        if len(got) == 2:
            break
    await response.aclose()
    assert [f async for f in stream] == []  # type: ignore[union-attr]
    assert stream.sent == 2  # type: ignore[union-attr]


async def test_closing_a_slow_stream_is_prompt() -> None:
    transport = MockTransport(chunk_delay=3600)
    body = {"messages": [user("one two three")], "stream": True}
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        with trio.fail_after(5):
            async with c.stream("POST", "/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    assert line.startswith("data: ")
                    break


async def test_openai_sdk_end_to_end() -> None:
    # openai>=2 runs on `httpx2` but still accepts a legacy `httpx.AsyncClient`.
    http: Any = httpx.AsyncClient(transport=MockTransport(chunk_delay=0))  # typed as httpx2's
    async with openai.AsyncOpenAI(api_key="x", base_url=BASE, http_client=http) as sdk:
        messages: list[Any] = [user("hello sdk")]
        completion = await sdk.chat.completions.create(model="mock-1", messages=messages)
        assert completion.choices[0].message.content == "You said: hello sdk"

        text = []
        events = await sdk.chat.completions.create(
            model="mock-1", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in events:
            text += [c.delta.content or "" for c in chunk.choices]
        assert "".join(text) == "You said: hello sdk"

        tools: list[Any] = [WEATHER]
        messages = [user("use get_weather")]
        called = await sdk.chat.completions.create(model="mock-1", messages=messages, tools=tools)
        (call,) = function_calls(called.choices[0].message)
        messages += [
            called.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "rain"},
        ]
        answer = await sdk.chat.completions.create(model="mock-1", messages=messages, tools=tools)
        assert answer.choices[0].message.content == "Tool get_weather returned: rain"

        embedded = await sdk.embeddings.create(model="mock-embed", input=["x", "y"])  # base64
        assert [len(d.embedding) for d in embedded.data] == [8, 8]
        assert [m.id async for m in sdk.models.list()] == list(MOCK_MODELS)


async def test_odd_schemas_do_not_break_tool_calls(client: httpx.AsyncClient) -> None:
    odd = {"type": "object", "properties": {"a": {}}, "required": [["x"], "a", "missing"]}
    tools = [{"type": "function", "function": {"name": "odd", "parameters": odd}}]
    tools.append({"type": "function", "function": {"name": "bare"}})  # no parameters at all
    for name in ("odd", "bare"):
        choice = {"type": "function", "function": {"name": name}}
        completion = await chat(client, messages=[user("x")], tools=tools, tool_choice=choice)
        (call,) = function_calls(completion.choices[0].message)
        assert orjson.loads(call.function.arguments) == ({"a": "x"} if name == "odd" else {})


async def test_tool_results_after_the_last_assistant_turn_get_text(
    client: httpx.AsyncClient,
) -> None:
    """Even when a user message that mentions the tool follows the results (as an
    Anthropic turn holding a tool_result and text becomes), and even when forced."""
    messages: list[dict[str, Any]] = [user("use get_weather")]
    first = await chat(client, messages=messages, tools=[WEATHER, SEARCH])
    (call,) = function_calls(first.choices[0].message)
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_other", "name": "search", "content": "none"},
        user("remember: use get_weather and search tools"),
    ]
    second = await chat(client, messages=messages, tools=[WEATHER, SEARCH], tool_choice="required")
    assert second.choices[0].message.content == (
        "Tool get_weather returned: sunny; Tool search returned: none"
    )
    messages.append({"role": "assistant", "content": "done"})
    messages.append(user("now use get_weather again"))
    third = await chat(client, messages=messages, tools=[WEATHER])
    assert [c.function.name for c in function_calls(third.choices[0].message)] == ["get_weather"]


ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
}


async def test_anthropic_format_with_the_sdk(start_gateway: Any) -> None:
    """``mock-anthropic`` through an offline gateway: Anthropic clients pass through."""
    gw = await start_gateway({"MINI_LLM_MOCK_DELAY": "0", "MINI_LLM_USAGE_DB": "off"})
    async with anthropic.AsyncAnthropic(api_key="x", base_url=gw, max_retries=0) as sdk:
        hello: list[Any] = [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}]
        message = await sdk.messages.create(model="claude-x", max_tokens=50, messages=hello)
        assert (message.model, message.stop_reason, message.id[:8]) == (
            "claude-x",
            "end_turn",
            "msg_mock",
        )
        assert message.content[0].text == "You said: hi there"  # type: ignore[union-attr]
        assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 5)
        cut = await sdk.messages.create(model="claude-m", max_tokens=2, messages=hello)
        assert (cut.content[0].text, cut.stop_reason) == ("You said:", "max_tokens")  # type: ignore[union-attr]
        async with sdk.messages.stream(model="claude-m", max_tokens=50, messages=hello) as stream:
            texts = [t async for t in stream.text_stream]
            streamed = await stream.get_final_message()
        assert texts == ["You ", "said: ", "hi ", "there"]
        assert streamed.content[0].text == "You said: hi there"  # type: ignore[union-attr]
        assert streamed.usage.output_tokens == message.usage.output_tokens

        ask: list[Any] = [{"role": "user", "content": "weather? use get_weather"}]
        tools: list[Any] = [ANTHROPIC_WEATHER]
        called = await sdk.messages.create(
            model="claude-m", max_tokens=50, messages=ask, tools=tools
        )
        (use,) = called.content
        assert called.stop_reason == "tool_use" and use.type == "tool_use"
        assert use.id.startswith("toolu_") and use.name == "get_weather"
        assert use.input == {
            "city": "weather? use get_weather",
            "days": 1,
            "metric": True,
            "unit": "celsius",
        }
        async with sdk.messages.stream(
            model="claude-m", max_tokens=50, messages=ask, tools=tools
        ) as stream:
            assert (await stream.get_final_message()).content[0].input == use.input  # type: ignore[union-attr]
        result = {
            "type": "tool_result",
            "tool_use_id": use.id,
            "content": [{"type": "text", "text": "rain"}],
        }
        ask += [
            {"role": "assistant", "content": [use.model_dump()]},
            {"role": "user", "content": [result]},
        ]
        forced = {"type": "any"}
        answer = await sdk.messages.create(
            model="claude-m",
            max_tokens=50,
            messages=ask,
            tools=tools,
            tool_choice=forced,  # type: ignore[arg-type]
        )
        assert answer.content[0].text == "Tool get_weather returned: rain"  # type: ignore[union-attr]
        counted = await sdk.messages.count_tokens(model="claude-m", messages=hello)
        assert counted.input_tokens == message.usage.input_tokens

        with pytest.raises(anthropic.BadRequestError) as bad:
            await sdk.messages.create(model="claude-m", max_tokens=0, messages=hello)
        assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        with pytest.raises(anthropic.BadRequestError, match="no tool named 'nope'"):
            await sdk.messages.create(
                model="claude-m",
                max_tokens=5,
                messages=hello,
                tools=tools,
                tool_choice={"type": "tool", "name": "nope"},
            )
