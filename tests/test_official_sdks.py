"""The official openai and anthropic SDKs through the gateway, same format."""

from __future__ import annotations

import anthropic
import openai
import pytest
import trio

from gateway_fixtures import gateway_env
from upstream import FakeUpstream, Reply, Status

PROMPT = [{"role": "user", "content": "hello sdk"}]


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway) -> str:  # type: ignore[no-untyped-def]
    return await start_gateway(gateway_env(upstream.url))


def openai_client(gw: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="client-key", base_url=f"{gw}/v1", max_retries=0)


def anthropic_client(gw: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="client-key", base_url=gw, max_retries=0)


async def test_openai_async_plain_and_stream(gw: str) -> None:
    client = openai_client(gw)
    completion = await client.chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert completion.choices[0].message.content == "echo: hello sdk"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == "echo: hello sdk"


async def test_openai_sync_client_in_thread(gw: str) -> None:
    def call() -> str | None:
        client = openai.OpenAI(api_key="client-key", base_url=f"{gw}/v1", max_retries=0)
        with client.chat.completions.stream(model="gpt-4o", messages=PROMPT) as stream:  # type: ignore[arg-type]
            final = stream.get_final_completion()
        return final.choices[0].message.content

    assert await trio.to_thread.run_sync(call) == "echo: hello sdk"


async def test_openai_tool_call_passthrough(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(Reply(tool_call=("get_weather", {"city": "Paris"})))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    completion = await openai_client(gw).chat.completions.create(
        model="gpt-4o",
        messages=PROMPT,
        tools=tools,  # type: ignore[arg-type]
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]


async def test_anthropic_plain_and_stream_helper(gw: str) -> None:
    client = anthropic_client(gw)
    message = await client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=32,
        messages=PROMPT,  # type: ignore[arg-type]
    )
    assert message.content[0].text == "echo: hello sdk"  # type: ignore[union-attr]
    async with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=32,
        messages=PROMPT,  # type: ignore[arg-type]
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == "echo: hello sdk"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("status", "openai_exc", "anthropic_exc"),
    [
        (400, openai.BadRequestError, anthropic.BadRequestError),
        (401, openai.AuthenticationError, anthropic.AuthenticationError),
        (403, openai.PermissionDeniedError, anthropic.PermissionDeniedError),
        (404, openai.NotFoundError, anthropic.NotFoundError),
        (429, openai.RateLimitError, anthropic.RateLimitError),
        (500, openai.InternalServerError, anthropic.InternalServerError),
    ],
)
async def test_upstream_errors_raise_the_sdk_exception(
    gw: str, upstream: FakeUpstream, status: int, openai_exc: type, anthropic_exc: type
) -> None:
    upstream.push(*[Status(status)] * 6)  # 5xx are retried twice per call
    with pytest.raises(openai_exc):
        await openai_client(gw).chat.completions.create(model="gpt-4o", messages=PROMPT)
    with pytest.raises(anthropic_exc):
        await anthropic_client(gw).messages.create(
            model="claude-sonnet-4-5",
            max_tokens=8,
            messages=PROMPT,  # type: ignore[arg-type]
        )


async def test_same_format_errors_keep_provider_fields(gw: str, upstream: FakeUpstream) -> None:
    body = {
        "error": {
            "message": "This model's maximum context length is 128000 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    upstream.push(Status(400, body=body))
    with pytest.raises(openai.BadRequestError) as exc:
        await openai_client(gw).chat.completions.create(model="gpt-4o", messages=PROMPT)
    assert exc.value.code == "context_length_exceeded"
    assert exc.value.param == "messages"
