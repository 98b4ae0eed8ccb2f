"""The built-in offline provider through the real gateway, as users meet it: no keys."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from gateway_fixtures import gateway_env
from upstream import FakeUpstream

TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}
TOOL_ANTHROPIC = {
    "name": "lookup",
    "input_schema": TOOL_OPENAI["function"]["parameters"],  # type: ignore[index]
}


@pytest.fixture
async def gw(start_gateway) -> str:  # type: ignore[no-untyped-def]
    return await start_gateway({"MINI_LLM_MOCK_DELAY": "0"})


async def test_every_model_is_mocked_without_keys(gw: str) -> None:
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{gw}/v1", max_retries=0)
    for model, mock in (
        ("gpt-4o", "mock"),
        ("claude-opus-4", "mock-anthropic"),  # the format its usual provider speaks
        ("anything-at-all", "mock"),
    ):
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi there"}]
        )
        assert raw.headers["x-minillm-target"] == f"{mock}:{model}"
        assert raw.parse().choices[0].message.content == "You said: hi there"


async def test_claude_offline_goes_through_the_real_translation(gw: str) -> None:
    """`n: 3` cannot be honoured by an Anthropic target: 400 offline as in production."""
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{gw}/v1", max_retries=0)
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError, match="only n=1"):
        await client.chat.completions.create(model="claude-haiku-4-5", messages=hi, n=3)  # type: ignore[arg-type]
    plain = await client.chat.completions.create(model="gpt-4o", messages=hi, n=3)  # type: ignore[arg-type]
    assert len(plain.choices) == 1  # the OpenAI-format mock ignores n, as documented
    async with httpx.AsyncClient() as http:  # an Anthropic client: no translation at all
        r = await http.post(
            f"{gw}/v1/messages",
            json={"model": "claude-haiku-4-5", "max_tokens": 9, "messages": hi},
            headers={"anthropic-version": "2023-06-01"},
        )
        assert r.headers["x-minillm-target"] == "mock-anthropic:claude-haiku-4-5"
        assert r.json()["id"].startswith("msg_mock")  # the mock's own id: not translated
        missing = await http.post(
            f"{gw}/v1/messages", json={"model": "claude-haiku-4-5", "messages": hi}
        )
        assert missing.status_code == 400 and "max_tokens" in missing.text
        counted = await http.post(
            f"{gw}/v1/messages/count_tokens",
            json={"model": "claude-haiku-4-5", "messages": hi},
        )
        assert counted.json() == {"input_tokens": 1}


async def test_openai_stream_with_a_tool_call(gw: str) -> None:
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{gw}/v1", max_retries=0)
    async with client.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "use the lookup tool for cats"}],
        tools=[TOOL_OPENAI],  # type: ignore[list-item]
    ) as stream:
        final = await stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments)["query"]


async def test_anthropic_sdk_stream(gw: str) -> None:
    client = anthropic.AsyncAnthropic(api_key="x", base_url=gw, max_retries=0)
    async with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == "You said: hello"  # type: ignore[union-attr]


async def test_embeddings_and_models_offline(gw: str) -> None:
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{gw}/v1", max_retries=0)
    result = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{gw}/v1/models")).status_code == 200


async def test_mock_prefix_with_real_providers_configured(
    start_gateway,
    upstream: FakeUpstream,  # type: ignore[no-untyped-def]
) -> None:
    gw = await start_gateway(gateway_env(upstream.url, MINI_LLM_MOCK_DELAY="0"))
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{gw}/v1", max_retries=0)
    mocked = await client.chat.completions.create(
        model="mock:test-model", messages=[{"role": "user", "content": "ping"}]
    )
    assert mocked.choices[0].message.content == "You said: ping"
    real = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "ping"}]
    )
    assert real.choices[0].message.content == "echo: ping"
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "gpt-4o"])  # passthrough, translated
async def test_anthropic_agent_loop_ends_after_the_tool_result(gw: str, model: str) -> None:
    """Claude Code's shape: the tool result and a reminder that mentions the tools share
    the user turn; the mock answers in text, so the agent's loop ends."""
    client = anthropic.AsyncAnthropic(api_key="x", base_url=gw, max_retries=0)
    reminder = {"type": "text", "text": "<system-reminder>use the lookup tool</system-reminder>"}
    messages: list[dict[str, object]] = [
        {"role": "user", "content": [{"type": "text", "text": "use the lookup tool"}, reminder]}
    ]
    first = await client.messages.create(
        model=model,
        max_tokens=50,
        messages=messages,
        tools=[TOOL_ANTHROPIC],  # type: ignore[arg-type,list-item]
    )
    (use,) = [b for b in first.content if b.type == "tool_use"]
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "42 cats"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [result, reminder]},
    ]
    async with client.messages.stream(
        model=model,
        max_tokens=50,
        messages=messages,
        tools=[TOOL_ANTHROPIC],  # type: ignore[arg-type,list-item]
    ) as stream:
        second = await stream.get_final_message()
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["text"]
    assert second.content[0].text == "Tool lookup returned: 42 cats"  # type: ignore[union-attr]


@pytest.mark.parametrize("model", ["gpt-4o", "claude-haiku-4-5"])  # passthrough, translated
async def test_openai_agent_loop_ends_after_the_tool_result(gw: str, model: str) -> None:
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{gw}/v1", max_retries=0)
    messages: list[dict[str, object]] = [{"role": "user", "content": "use the lookup tool"}]
    tools = [TOOL_OPENAI]
    first = await client.chat.completions.create(
        model=model,
        messages=messages,
        tools=tools,
        tool_choice="required",  # type: ignore[arg-type]
    )
    (call,) = first.choices[0].message.tool_calls or []
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "42 cats"},
    ]
    second = await client.chat.completions.create(
        model=model,
        messages=messages,
        tools=tools,
        tool_choice="required",  # type: ignore[arg-type]
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Tool lookup returned: 42 cats"
