"""The OpenAI Responses API passed through to a provider that serves it.

The official openai SDK calls the real gateway, which calls the fake upstream's
``/v1/responses``: the body goes on with only ``model`` replaced, unknown fields
survive both ways, provider errors are relayed, and usage is counted (usage
rows, token limits) from the body or from ``response.completed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from gateway_fixtures import gateway_env
from test_usage import rows
from upstream import DropAfter, FakeUpstream, Reply, Status
from upstream_responses import FAKE_EXTRA

GW_KEY = "sk-gw-responses-1"
CODEX_FIELDS: dict[str, Any] = {
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "reasoning": {"effort": "medium", "summary": "auto"},
    "prompt_cache_key": "session-1",
}


@pytest.fixture
async def gw(upstream: FakeUpstream, start_gateway, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[auth.keys]]\nname = "team"\nkey = "{GW_KEY}"\ntpm = 600\n'
        '[aliases]\nfast = "openai:gpt-4.1-mini"\n'
    )
    env = gateway_env(
        upstream.url, MINI_LLM_CONFIG=str(config), MINI_LLM_USAGE_DB=str(tmp_path / "u.db")
    )
    return await start_gateway(env)


def client(gw: str, prefix: str = "") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=GW_KEY, base_url=f"{gw}{prefix}/v1", max_retries=0)


async def test_plain_call_keeps_every_field_but_the_model(gw: str, upstream: FakeUpstream) -> None:
    raw = await client(gw).responses.with_raw_response.create(
        model="fast",
        input="hello responses",
        instructions="Be brief.",
        extra_body={**CODEX_FIELDS, "x_future_field": {"a": 1}},
    )
    response = raw.parse()
    assert response.output_text == "echo: hello responses"
    assert response.model_extra is not None and response.model_extra["fake_extra"] == FAKE_EXTRA
    assert raw.headers["x-minillm-target"] == "openai:gpt-4.1-mini"
    assert "x-minillm-dropped-tools" not in raw.headers
    seen = upstream.requests[-1]
    assert seen.path == "/v1/responses"
    assert seen.headers["authorization"] == "Bearer sk-test-openai-key-0001"
    assert seen.json == {
        "model": "gpt-4.1-mini",
        "input": "hello responses",
        "instructions": "Be brief.",
        **CODEX_FIELDS,
        "x_future_field": {"a": 1},
    }


async def test_stream_helper_and_rows(gw: str, upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.push(Reply(usage=(21, 8)), Reply(usage=(30, 4)))
    async with client(gw, "/openai").responses.stream(
        model="gpt-4.1", input=[{"role": "user", "content": "stream to me"}]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "echo: stream to me"
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert upstream.requests[-1].json["stream"] is True
    assert "stream_options" not in upstream.requests[-1].json
    await client(gw).responses.create(model="gpt-4.1", input="plain")
    got = await rows(tmp_path / "u.db", 2)
    assert [(r["input_tokens"], r["output_tokens"]) for r in got] == [(21, 8), (30, 4)]
    assert {(r["client_format"], r["endpoint"], r["provider"]) for r in got} == {
        ("responses", "responses", "openai")
    }


async def test_tokens_count_against_the_key_limit(gw: str, upstream: FakeUpstream) -> None:
    upstream.push(Reply(usage=(590, 15)))  # 605 of 600 tokens per minute
    async with client(gw).responses.stream(model="gpt-4.1", input="big") as stream:
        await stream.get_final_response()
    with pytest.raises(openai.RateLimitError) as exc:
        await client(gw).responses.create(model="gpt-4.1", input="again")
    assert exc.value.response.headers["retry-after"] == "1"
    assert exc.value.body["type"] == "rate_limit_error"  # type: ignore[index]


async def test_provider_errors_are_relayed(gw: str, upstream: FakeUpstream) -> None:
    error = {"message": "no such item", "type": "invalid_request_error", "param": "input"}
    upstream.push(Status(400, body={"error": {**error, "code": "item_not_found"}}))
    with pytest.raises(openai.BadRequestError) as bad:
        await client(gw).responses.create(model="gpt-4.1", input="x")
    assert bad.value.body == {**error, "code": "item_not_found"}
    assert bad.value.response.headers["x-minillm-target"] == "openai:gpt-4.1"
    upstream.push(Status(429, headers={"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError) as limited:
        await client(gw).responses.create(model="gpt-4.1", input="x")
    assert limited.value.response.headers["retry-after"] == "3"


async def test_upstream_cut_mid_stream_ends_with_an_error_event(
    gw: str, upstream: FakeUpstream
) -> None:
    upstream.push(DropAfter(2))
    seen: list[str] = []
    with pytest.raises(openai.APIError) as exc:
        async with client(gw).responses.stream(model="gpt-4.1", input="x") as stream:
            async for event in stream:
                seen.append(event.type)
    assert exc.value.message == "Provider unavailable"
    assert seen[0] == "response.created"  # the answer had started


async def test_unknown_model_name_is_an_openai_shaped_400(gw: str) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        await client(gw).responses.create(model="", input="x")
    assert exc.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert "model" in exc.value.message
