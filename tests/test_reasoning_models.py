"""``reasoning_models``: which models get ``max_completion_tokens`` and ``reasoning_effort``."""

from __future__ import annotations

from pathlib import Path

import anthropic
import pytest

from gateway_fixtures import gateway_env
from minillm.config import Config, ConfigError
from upstream import FakeUpstream


def test_defaults_env_and_toml(tmp_path: Path) -> None:
    config = Config.load({})
    assert config.providers["openai"].reasoning_models == ("o1*", "o3*", "o4*", "gpt-5*")
    assert config.providers["anthropic"].reasoning_models == ()
    assert config.providers["openai"].is_reasoning("o3-mini")
    assert not config.providers["openai"].is_reasoning("gpt-4o")

    env = {
        "MINI_LLM_PROVIDER_OPENAI_REASONING_MODELS": "my-r*",
        "MINI_LLM_PROVIDER_VLLM_URL": "http://127.0.0.1:1/v1",
    }
    config = Config.load(env)
    assert config.providers["openai"].reasoning_models == ("my-r*",)
    assert not config.providers["openai"].is_reasoning("gpt-5.1")
    assert config.providers["vllm"].reasoning_models == ()

    path = tmp_path / "minillm.toml"
    path.write_text("[providers.openai]\nreasoning_models = []\n")
    assert Config.load({}, config_file=path).providers["openai"].reasoning_models == ()
    path.write_text('[providers.openai]\nreasoning_models = "o3*, o4*"\n')
    assert Config.load({}, config_file=path).providers["openai"].reasoning_models == ("o3*", "o4*")
    path.write_text("[providers.openai]\nreasoning_models = [3]\n")
    with pytest.raises(ConfigError, match=r"\] reasoning_models: expected a list"):
        Config.load({}, config_file=path)


@pytest.mark.parametrize(
    ("model", "sent"),
    [
        ("gpt-4.1", {"max_tokens": 500, "temperature": 0.3}),
        ("o3-mini", {"max_completion_tokens": 500, "reasoning_effort": "low"}),
    ],
)
async def test_through_the_gateway(
    upstream: FakeUpstream,
    start_gateway,
    model: str,
    sent: dict[str, object],  # type: ignore[no-untyped-def]
) -> None:
    gw = await start_gateway(gateway_env(upstream.url))
    client = anthropic.AsyncAnthropic(api_key="client", base_url=gw, max_retries=0)
    message = await client.messages.create(
        model=model,
        max_tokens=500,
        messages=[{"role": "user", "content": "think"}],
        extra_body={"output_config": {"effort": "low"}, "temperature": 0.3},
    )
    assert message.content[0].text == "echo: think"  # type: ignore[union-attr]
    body = upstream.requests[-1].json
    keys = ("max_tokens", "max_completion_tokens", "temperature", "reasoning_effort")
    assert {k: body[k] for k in keys if k in body} == sent
