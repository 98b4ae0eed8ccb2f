"""Configuration mistakes are caught, and each error says where the value came from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai
import pytest

from minillm.core.config import Config, ConfigError
from minillm.core.errors import BadRequest
from minillm.core.redis_url import Cluster, Sentinel, parse_redis_url
from minillm.core.routing import resolve_alias
from processes import clean_env

KEYED = '\n[[auth.keys]]\nname = "ops"\nkey = "0123456789abcdef"\n'


def load_file(tmp_path: Path, text: str, **env: str) -> Config:
    path = tmp_path / "minillm.toml"
    path.write_text(text)
    return Config.load(env, config_file=path)


def file_error(tmp_path: Path, text: str, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_file(tmp_path, text, **env)
    message = str(caught.value)
    assert "\n" not in message and "MINI_LLM" not in message.replace("MINI_LLM_AUTH_KEYS", "")
    return message.replace(str(tmp_path / "minillm.toml"), "minillm.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prot = 3333", "minillm.toml: unknown key 'prot' (did you mean 'port'?)"),
        (  # renamed: durations carry no unit suffix in the file (the env names keep theirs)
            "key_disable_s = 60",
            "minillm.toml: unknown key 'key_disable_s' (did you mean 'key_disable'?)",
        ),
        (
            "breaker_cooldown_s = 60",
            "minillm.toml: unknown key 'breaker_cooldown_s' (did you mean 'breaker_cooldown'?)",
        ),
        (
            '[provider.local]\nbase_url = "http://x"',
            "minillm.toml: unknown key 'provider' (did you mean 'providers'?)",
        ),
        (
            '[providers.local]\nbaseurl = "http://127.0.0.1:8000/v1"',
            "minillm.toml [providers.local]: unknown key 'baseurl' (did you mean 'base_url'?)",
        ),
        (
            KEYED + "rmp = 5",
            "minillm.toml [[auth.keys]] #1: unknown key 'rmp' (did you mean 'rpm'?)",
        ),
        ("[auth]\nkyes = []", "minillm.toml [auth]: unknown key 'kyes' (did you mean 'keys'?)"),
        (
            "[models.gpt-4o]\ninput_per_mtokens = 2",
            "minillm.toml [models.gpt-4o]: unknown key 'input_per_mtokens'"
            " (did you mean 'input_per_mtok'?)",
        ),
        (
            '[aliases.fast]\ntargets = ["openai:gpt-4o"]',
            "minillm.toml [aliases] fast: expected 'provider:model' or a list of them, got a table",
        ),
        ("zzz = 1", "minillm.toml: unknown key 'zzz'"),
    ],
)
def test_unknown_keys_are_rejected_at_every_level(tmp_path: Path, text: str, expected: str) -> None:
    assert file_error(tmp_path, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('port = "abc"', "minillm.toml port: expected a number, got 'abc'"),
        (
            '[providers.local]\nbase_url = "ftp://x"',
            "minillm.toml [providers.local] base_url: expected an http(s) URL",
        ),
        (
            "[providers.local]\ntimeout = 5",
            "minillm.toml [providers.local]: provider 'local' has no base_url (an http(s) URL)",
        ),
        (
            '[providers.local]\nbase_url = "http://x"\nformat = "grpc"',
            "minillm.toml [providers.local] format: expected 'openai' or 'anthropic', got 'grpc'",
        ),
        (
            '[providers.local]\nbase_url = "http://x"\nmax_in_flight = 0',
            "minillm.toml [providers.local] max_in_flight: expected a positive integer",
        ),
        (
            KEYED + "rpm = 0",
            "minillm.toml [[auth.keys]] #1 rpm: expected a positive integer, got 0",
        ),
        (
            '[aliases]\nfast = "nope:model"',
            "minillm.toml [aliases] fast: unknown provider 'nope'"
            " (known: anthropic, mock, mock-anthropic, openai)",
        ),
        (
            "[models.fast]\ntargets = []",
            "minillm.toml [models.fast] targets: expected at least one 'provider:model'",
        ),
    ],
)
def test_file_values_are_reported_where_they_were_set(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert file_error(tmp_path, text) == expected


def test_the_environment_is_named_when_it_set_the_value(tmp_path: Path) -> None:
    text = '[providers.local]\nbase_url = "http://127.0.0.1:8000/v1"'
    with pytest.raises(ConfigError, match=r"^MINI_LLM_PROVIDER_LOCAL_URL: expected an http"):
        load_file(tmp_path, text, MINI_LLM_PROVIDER_LOCAL_URL="ftp://x")
    with pytest.raises(ConfigError, match=r"^MINI_LLM_PROVIDER_X_KEY: provider 'x' has no MINI_"):
        Config.load({"MINI_LLM_PROVIDER_X_KEY": "k"})
    assert load_file(tmp_path, "port = 1", MINI_LLM_PORT="2").port == 2  # the env wins


def test_flags_are_named_as_flags() -> None:
    with pytest.raises(ConfigError, match=r"^--port: expected a port number 0-65535, got '99999'$"):
        Config.load({"MINI_LLM_PORT": "1"}, port="99999")
    assert Config.load({"MINI_LLM_PORT": "1"}, port="0").port_from == "--port"
    assert Config.load({"MINI_LLM_PORT": "1"}).port_from == "MINI_LLM_PORT"
    assert Config.load({}).port_from is None  # the default: the only port that may move


def test_config_file_errors_name_how_it_was_given(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=rf"^--config: cannot read {missing}: No such file"):
        Config.load({}, config_file=missing)
    with pytest.raises(ConfigError, match=r"^MINI_LLM_CONFIG: cannot read"):
        Config.load({"MINI_LLM_CONFIG": str(missing)})
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=rf"^--config: {binary} is not UTF-8 text$"):
        Config.load({}, config_file=binary)


def test_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "minillm.toml"
    path.write_text("prot = 3333\n")
    for command in ("serve", "config"):
        run = subprocess.run(
            [sys.executable, "-m", "minillm", command, "--config", str(path)],
            env=clean_env({"MINI_LLM_USAGE_DB": "off"}),
            capture_output=True,
            text=True,
            check=False,
        )
        assert (run.returncode, run.stdout) == (2, "")
        assert run.stderr == (
            f"minillm: configuration error: {path}: unknown key 'prot' (did you mean 'port'?)\n"
        )


def test_a_host_name_that_resolves_to_loopback_needs_no_keys() -> None:
    assert Config.load({"MINI_LLM_HOST": "localhost"}).host == "localhost"
    with pytest.raises(ConfigError, match=r"^MINI_LLM_HOST: cannot resolve host 'no\.invalid'$"):
        Config.load({"MINI_LLM_HOST": "no.invalid"})


# --- unknown provider prefixes ------------------------------------------------------------


def routed(model: str, **env: str) -> list[str]:
    config = Config.load(env)
    targets = resolve_alias(model, config.aliases, config.providers, offline=config.offline)
    return [str(t) for t in targets]


def test_an_unknown_provider_prefix_is_a_400_listing_the_known_ones() -> None:
    online = {"OPENAI_API_KEY": "sk-x", "MINI_LLM_PROVIDER_GROQ_URL": "http://127.0.0.1:9/v1"}
    for env in (online, {}):  # offline as in production
        with pytest.raises(BadRequest) as caught:
            routed("nosuch:model", **env)
        assert caught.value.message.startswith("Unknown provider 'nosuch' in model 'nosuch:model'")
        assert "(known: anthropic, " in caught.value.message
    assert routed("groq:llama-3.1-8b", **online) == ["groq:llama-3.1-8b"]
    assert routed("ft:gpt-4o-mini:org::abc", **online) == ["openai:ft:gpt-4o-mini:org::abc"]
    assert routed("anthropic.claude-v2:1", **online) == ["anthropic:anthropic.claude-v2:1"]


def test_names_with_a_colon_reach_a_self_hosted_default_provider() -> None:
    ollama = {"MINI_LLM_OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"}
    assert routed("llama3:8b", **ollama) == ["openai:llama3:8b"]


async def test_unknown_provider_through_the_gateway(start_gateway) -> None:  # type: ignore[no-untyped-def]
    gw = await start_gateway({"MINI_LLM_USAGE_DB": "off"})  # offline: no request leaves
    client = openai.AsyncOpenAI(api_key="x", base_url=f"{gw}/v1", max_retries=0)
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError, match="Unknown provider 'nosuch'"):
        await client.chat.completions.create(model="nosuch:model", messages=hi)  # type: ignore[arg-type]
    mocked = await client.chat.completions.create(model="mock:any:thing", messages=hi)  # type: ignore[arg-type]
    assert mocked.model == "any:thing"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://:pw@h", "expected a redis://, rediss://, unix://, redis+sentinel:// or"),
        ("redis+sentinel://:pw@h:26379", "redis+sentinel:// needs a service name: redis+sen"),
        ("redis+sentinel://:pw@h:x/mymaster", "redis+sentinel://: expected host:port[,host:"),
        ("redis+sentinel://:pw@h/mymaster/x", "redis+sentinel://: the database after the ser"),
        ("redis+sentinel://:pw@h/mymaster?ssl=1", "redis+sentinel://: options (?...) are not "),
        ("redis+cluster://:pw@h:7000/2", "redis+cluster://: a Cluster has only database 0"),
        ("redis+cluster:///", "redis+cluster:// needs a node: redis+cluster://host:6379"),
    ],
)
def test_a_bad_redis_url_is_one_line_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.load({"MINI_LLM_REDIS_URL": url})
    assert str(caught.value).startswith(f"MINI_LLM_REDIS_URL: {expected}")
    assert "\n" not in str(caught.value) and "pw" not in str(caught.value)


def test_sentinel_and_cluster_urls_are_accepted() -> None:
    for url in ("redis+sentinel://a:26379,b/mymaster/1", "rediss+cluster://:pw@node:7000"):
        assert Config.load({"MINI_LLM_REDIS_URL": url}).redis_url == url
    nodes = (("a", 26380), ("::1", 26379), ("::2", 5))  # Sentinels listen on 26379 by default
    assert parse_redis_url("redis+sentinel://u:p%40w@a:26380,[::1],[::2]:5/main/1") == Sentinel(
        nodes, "main", 1, "u", "p@w"
    )
    assert parse_redis_url("rediss+cluster://:pw@node:7000") == Cluster("rediss://:pw@node:7000")
