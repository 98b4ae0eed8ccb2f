"""The README's examples are real: its config file loads and names only real settings."""

from __future__ import annotations

import re
from pathlib import Path

from minillm.core.config import Config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_config_example_loads(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(# minillm.toml.*?)```", README, re.S)
    assert block is not None
    path = tmp_path / "minillm.toml"
    path.write_text(block.group(1))
    config = Config.load({"GROQ_API_KEY": "gsk-test", "OPENAI_API_KEY": "sk-x"}, config_file=path)
    assert config.request_timeout == 90
    assert config.providers["local"].timeout == 5 and config.providers["local"].max_in_flight == 8
    assert config.providers["local"].is_reasoning("qwq-32b")
    assert config.providers["groq"].keys == ("gsk-test",)
    assert [str(t) for t in config.aliases["smart"]] == [
        "anthropic:claude-sonnet-4-5",
        "openai:gpt-4.1",
    ]
    assert str(config.aliases["cheap"][0]) == "local:llama3.1:8b"


def test_every_documented_variable_is_read() -> None:
    source = "".join(p.read_text() for p in (Path(__file__).parent.parent / "src").rglob("*.py"))
    documented = set(re.findall(r"`(MINI_LLM_[A-Z_]+)`", README))
    assert documented, "the README documents its settings"
    built = {"MINI_LLM_PROVIDER_", "MINI_LLM_OPENAI_BASE_URL", "MINI_LLM_ANTHROPIC_BASE_URL"}
    for name in documented - built:
        assert name in source, f"{name} is documented but never read"
    config = Config.load(
        {
            "MINI_LLM_OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
            "MINI_LLM_ANTHROPIC_BASE_URL": "http://127.0.0.1:2",
            "MINI_LLM_PROVIDER_LOCAL_URL": "http://127.0.0.1:3/v1",
            "MINI_LLM_PROVIDER_LOCAL_FORMAT": "anthropic",
            "MINI_LLM_PROVIDER_LOCAL_REASONING_MODELS": "r1*, qwq*",
        }
    )
    assert config.providers["local"].reasoning_models == ("r1*", "qwq*")
    assert config.providers["openai"].base_url == "http://127.0.0.1:1/v1"
    assert config.providers["anthropic"].base_url == "http://127.0.0.1:2"
    assert config.providers["local"].format == "anthropic"
