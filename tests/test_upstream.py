"""Tests of the fake upstream itself, over real HTTP with a raw httpx client."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pydantic
import pytest
import trio
from anthropic.types import Message, RawMessageStreamEvent
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from upstream import (
    DropAfter,
    FakeUpstream,
    Hang,
    Raw,
    Reply,
    SlowStream,
    StallAfter,
    Status,
)

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
ARGS = {"city": "Paris", "units": "celsius", "days": [1, 2, 3]}


def chat(text: str = "hello there world", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": text}], **extra}


def msgs(text: str = "hello there world", **extra: Any) -> dict[str, Any]:
    content = [{"type": "text", "text": text}]
    return {
        "model": "claude-test",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": content}],
        **extra,
    }


def sse(raw: bytes) -> list[tuple[str | None, str]]:
    """(event, data) pairs of an SSE body."""
    events = []
    for block in raw.decode().split("\n\n"):
        if block:
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            events.append((fields.get("event"), fields["data"]))
    return events


@pytest.fixture
async def client(upstream: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=upstream.url, timeout=5) as c:
        yield c


# -- Reply ----------------------------------------------------------------------------------


async def test_openai_reply_echoes_and_records(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    before = trio.current_time()
    r = await client.post(CHAT, json=chat(), headers={"Authorization": "Bearer sk-x"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    completion = ChatCompletion.model_validate(r.json())
    assert completion.model == "gpt-test"
    assert completion.choices[0].message.content == "echo: hello there world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 10
    assert upstream.url.startswith("http://127.0.0.1:")
    assert not upstream.url.endswith("/")
    [rec] = upstream.requests
    assert (rec.method, rec.path) == ("POST", CHAT)
    assert rec.headers["authorization"] == "Bearer sk-x"
    assert rec.json == chat()
    assert orjson.loads(rec.body) == chat()
    assert before <= rec.at <= trio.current_time()


async def test_openai_stream_with_usage(client: httpx.AsyncClient) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    r = await client.post(CHAT, json=body)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.content)
    assert events[-1] == (None, "[DONE]")
    chunks = [ChatCompletionChunk.model_validate_json(data) for _, data in events[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    texts = [c.choices[0].delta.content for c in chunks if c.choices]
    assert len([t for t in texts if t]) >= 4
    assert "".join(t or "" for t in texts) == "echo: hello there world"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 15
    assert {c.model for c in chunks} == {"gpt-test"}


async def test_openai_stream_without_usage(client: httpx.AsyncClient) -> None:
    r = await client.post(CHAT, json=chat(stream=True))
    chunks = [ChatCompletionChunk.model_validate_json(d) for _, d in sse(r.content)[:-1]]
    assert all(c.choices and c.usage is None for c in chunks)


async def test_openai_custom_text_and_usage(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.push(Reply(text="custom answer", usage=(3, 4)))
    completion = ChatCompletion.model_validate((await client.post(CHAT, json=chat())).json())
    assert completion.choices[0].message.content == "custom answer"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 4)


async def test_openai_tool_call(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.push(Reply(tool_call=("get_weather", ARGS)), Reply(tool_call=("get_weather", ARGS)))
    completion = ChatCompletion.model_validate((await client.post(CHAT, json=chat())).json())
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == ARGS

    r = await client.post(CHAT, json=chat(stream=True))
    chunks = [ChatCompletionChunk.model_validate_json(d) for _, d in sse(r.content)[:-1]]
    calls = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id and calls[0].function and calls[0].function.name == "get_weather"
    fragments = [tc.function.arguments for tc in calls[1:] if tc.function]
    assert len(fragments) >= 3
    assert orjson.loads("".join(f or "" for f in fragments)) == ARGS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_anthropic_reply(client: httpx.AsyncClient) -> None:
    r = await client.post(MESSAGES, json=msgs())
    assert r.status_code == 200
    message = Message.model_validate(r.json())
    assert message.model == "claude-test"
    assert message.stop_reason == "end_turn"
    [block] = message.content
    assert block.type == "text"
    assert block.text == "echo: hello there world"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 5)


async def test_anthropic_stream(client: httpx.AsyncClient) -> None:
    r = await client.post(MESSAGES, json=msgs(stream=True))
    assert r.headers["content-type"].startswith("text/event-stream")
    adapter = pydantic.TypeAdapter[Any](RawMessageStreamEvent)
    events = sse(r.content)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names[3:-3] == ["content_block_delta"] * len(names[3:-3])
    assert len(names[3:-3]) >= 4
    parsed = [adapter.validate_json(d) for name, d in events if name != "ping"]
    assert all(e.type == n for e, n in zip(parsed, [n for n in names if n != "ping"], strict=True))
    assert parsed[0].message.model == "claude-test"
    assert "".join(e.delta.text for e in parsed[2:-3]) == "echo: hello there world"
    assert parsed[-2].delta.stop_reason == "end_turn"
    assert parsed[-2].usage.output_tokens == 5


async def test_anthropic_tool_use(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.push(Reply(tool_call=("get_weather", ARGS)), Reply(tool_call=("get_weather", ARGS)))
    message = Message.model_validate((await client.post(MESSAGES, json=msgs())).json())
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", ARGS)

    r = await client.post(MESSAGES, json=msgs(stream=True))
    adapter = pydantic.TypeAdapter[Any](RawMessageStreamEvent)
    parsed = [adapter.validate_json(d) for name, d in sse(r.content) if name != "ping"]
    assert parsed[1].content_block.type == "tool_use"
    assert parsed[1].content_block.input == {}
    fragments = [e.delta.partial_json for e in parsed if e.type == "content_block_delta"]
    assert len(fragments) >= 3
    assert orjson.loads("".join(fragments)) == ARGS
    assert parsed[-2].delta.stop_reason == "tool_use"


async def test_delays(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.push(Reply(delay=0.2), Reply(chunk_delay=0.02))
    start = trio.current_time()
    await client.post(CHAT, json=chat())
    assert trio.current_time() - start >= 0.2
    start = trio.current_time()
    r = await client.post(MESSAGES, json=msgs(stream=True))
    assert trio.current_time() - start >= 0.02 * (len(sse(r.content)) - 1)


# -- Status, Raw, queue -------------------------------------------------------------------


async def test_status_default_bodies(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.push(Status(429), Status(529), Status(500), Status(401))
    r = await client.post(CHAT, json=chat(stream=True))
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "requests"
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = await client.post(MESSAGES, json=msgs())
    assert (r.status_code, r.json()["type"]) == (529, "error")
    assert r.json()["error"]["type"] == "overloaded_error"
    r = await client.post(CHAT, json=chat())
    assert r.json()["error"]["type"] == "server_error"
    r = await client.post(MESSAGES, json=msgs())
    error = {"type": "authentication_error", "message": "fake upstream error 401"}
    assert r.json()["error"] == error


async def test_status_custom(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.push(
        Status(503, {"oops": 1}, {"Retry-After": "7"}),
        Status(400, b"plain", {"Content-Type": "text/plain"}),
    )
    r = await client.post(CHAT, json=chat())
    assert (r.status_code, r.json(), r.headers["retry-after"]) == (503, {"oops": 1}, "7")
    r = await client.post(CHAT, json=chat())
    assert (r.status_code, r.content) == (400, b"plain")
    assert r.headers.get_list("content-type") == ["text/plain"]


async def test_raw(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.push(Raw(200, b'data: {"broken\n\n', "text/event-stream"))
    r = await client.post(CHAT, json=chat(stream=True))
    assert (r.status_code, r.content) == (200, b'data: {"broken\n\n')
    assert r.headers["content-type"] == "text/event-stream"


async def test_queue_is_fifo_then_default(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.push(Status(500), Status(502))
    codes = [(await client.post(CHAT, json=chat())).status_code for _ in range(3)]
    assert codes == [500, 502, 200]


async def test_unknown_route_is_404_and_keeps_queue(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.push(Status(500))
    r = await client.post("/v1/nope", json={})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "model_not_found")
    assert (await client.post(CHAT, json=chat())).status_code == 500
    assert [rec.path for rec in upstream.requests] == ["/v1/nope", CHAT]


# -- models, embeddings -------------------------------------------------------------------


async def test_models(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/models")
    assert r.json()["object"] == "list"
    models = [Model.model_validate(m) for m in r.json()["data"]]
    assert len(models) >= 2


async def test_embeddings(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/embeddings", json={"model": "e", "input": ["a", "b", "a"]})
    emb = CreateEmbeddingResponse.model_validate(r.json())
    vectors = [d.embedding for d in emb.data]
    assert [d.index for d in emb.data] == [0, 1, 2]
    assert vectors[0] == vectors[2] != vectors[1]
    r = await client.post("/v1/embeddings", json={"model": "e", "input": "a", "dimensions": 40})
    [single] = CreateEmbeddingResponse.model_validate(r.json()).data
    assert single.embedding[:8] == vectors[0]
    assert len(single.embedding) == 40
    body = {"model": "e", "input": "a", "encoding_format": "base64"}
    b64 = (await client.post("/v1/embeddings", json=body)).json()["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(b64))
    assert decoded == pytest.approx(vectors[0], abs=1e-6)


# -- failure modes ------------------------------------------------------------------------


async def test_hang_is_recorded_first_and_notices_disconnect(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.push(Hang())
    with pytest.raises(httpx.ReadTimeout):
        await client.post(CHAT, json=chat(), timeout=0.2)
    assert [r.path for r in upstream.requests] == [CHAT]
    await upstream.wait_disconnect(1)


async def test_slow_stream_notices_client_going_away(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    upstream.push(SlowStream(interval=0.02))
    start = trio.current_time()
    async with client.stream("POST", MESSAGES, json=msgs(stream=True)) as r:
        n = 0
        async for _ in r.aiter_raw():
            n += 1
            if n == 5:
                break
    closed = trio.current_time()
    assert closed - start >= 3 * 0.02
    assert await upstream.wait_disconnect(1) - closed < 1
    assert len(upstream.disconnects) == 1


async def test_slow_stream_completes(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.push(SlowStream(chunks=5, interval=0.01), SlowStream(chunks=3, interval=0.01))
    r = await client.post(CHAT, json=chat(stream=True))
    texts = [
        ChatCompletionChunk.model_validate_json(d).choices[0].delta.content
        for _, d in sse(r.content)[:-1]
    ]
    assert "".join(t or "" for t in texts) == "w0 w1 w2 w3 w4 "
    ChatCompletion.model_validate((await client.post(CHAT, json=chat())).json())
    await trio.sleep(0.05)
    assert upstream.disconnects == []  # normal completions are not disconnects


async def test_stall_after(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    upstream.push(StallAfter(2), StallAfter(2))
    async with client.stream("POST", CHAT, json=chat(stream=True)) as r:
        received = b""
        with trio.move_on_after(0.3) as idle:
            async for chunk in r.aiter_raw():
                received += chunk
        assert idle.cancelled_caught
    texts = [orjson.loads(d)["choices"][0]["delta"].get("content") for _, d in sse(received)]
    assert texts == ["", "w0 ", "w1 "]
    with pytest.raises(httpx.ReadTimeout):  # non-stream: headers, then part of the body
        await client.post(CHAT, json=chat(), timeout=0.2)


@pytest.mark.parametrize("stream", [True, False])
async def test_drop_after(upstream: FakeUpstream, client: httpx.AsyncClient, stream: bool) -> None:
    upstream.push(DropAfter(3))
    async with client.stream("POST", MESSAGES, json=msgs(stream=stream)) as r:
        assert r.status_code == 200
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):
            async for chunk in r.aiter_raw():
                received += chunk
    if stream:
        assert [name for name, _ in sse(received)].count("content_block_delta") == 3
    assert (await client.post(MESSAGES, json=msgs())).status_code == 200  # still serving


async def test_many_concurrent_requests(upstream: FakeUpstream, client: httpx.AsyncClient) -> None:
    results: list[str] = []

    async def one(i: int) -> None:
        r = await client.post(CHAT, json=chat(f"n{i}", stream=i % 2 == 0))
        results.append("ok" if r.status_code == 200 and f"n{i}" in r.text else r.text)

    upstream.push(Reply(delay=0.1), Hang())
    async with trio.open_nursery() as nursery:
        for i in range(60):
            nursery.start_soon(one, i)
        with trio.move_on_after(2):
            while len(results) < 59:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert results == ["ok"] * 59
    assert len(upstream.requests) == 60


async def test_teardown_with_open_requests(upstream: FakeUpstream, nursery: trio.Nursery) -> None:
    upstream.push(Hang(), StallAfter(1), SlowStream())

    async def forever(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        async with client.stream("POST", CHAT, json=body) as r:
            async for _ in r.aiter_raw():
                pass

    async def clients() -> None:
        client = httpx.AsyncClient(base_url=upstream.url, timeout=None)
        async with client, trio.open_nursery() as inner:
            for body in (chat(), chat(stream=True), chat(stream=True)):
                inner.start_soon(forever, client, body)

    nursery.start_soon(clients)
    with trio.fail_after(1):
        while len(upstream.requests) < 3:
            await trio.sleep(0.01)
    # returning leaves all three open: the fixture's nursery must still end promptly


# -- the official SDKs accept the fake ------------------------------------------------------


async def test_openai_sdk(upstream: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=f"{upstream.url}/v1", api_key="sk-x") as sdk:
        hi: Any = [{"role": "user", "content": "hi"}]
        done = await sdk.chat.completions.create(model="m", messages=hi)
        assert done.choices[0].message.content == "echo: hi"
        stream = await sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "a b"}], stream=True
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "echo: a b"
        emb = await sdk.embeddings.create(model="e", input=["x", "y"])
        assert len(emb.data[1].embedding) == 8
        upstream.push(Status(404))
        with pytest.raises(openai.NotFoundError):
            await sdk.models.list()


async def test_anthropic_sdk(upstream: FakeUpstream) -> None:
    async with anthropic.AsyncAnthropic(base_url=upstream.url, api_key="sk-x") as sdk:
        upstream.push(Reply(tool_call=("f", ARGS)))
        async with sdk.messages.stream(
            model="c", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            final = await stream.get_final_message()
        assert final.content[0].type == "tool_use"
        assert final.content[0].input == ARGS
        upstream.push(Status(529))
        with pytest.raises(anthropic.APIStatusError) as err:
            await sdk.with_options(max_retries=0).messages.create(
                model="c", max_tokens=9, messages=[{"role": "user", "content": "hi"}]
            )
        assert err.value.status_code == 529
