"""Every ``minillm`` command, run as a subprocess against a real (offline) gateway."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from minillm.cli import build_parser, main
from minillm.cli.config_cmd import mask_secret
from processes import clean_env
from test_sdk import wait_gone

OFFLINE = {"MINI_LLM_MOCK_DELAY": "0", "MINI_LLM_USAGE_DB": "off"}
ALIASES = '{"fast": ["mock:mock-1", "mock:mock-echo"]}'
SECRET = "sk-proj-0123456789abcdefwxyz"


def minillm(
    *args: str, env: Mapping[str, str] | None = None, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "minillm", *args],
        env=clean_env({**OFFLINE, **(env or {})}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    """One offline gateway for the module (with an alias, so `models` has rows)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "minillm", "serve", "--port", "0"],
        env=clean_env({**OFFLINE, "MINI_LLM_MODEL_ALIASES": ALIASES}),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("minillm listening on "), line
        yield line.split()[-1]
    finally:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


COMMANDS = [name for name in build_parser()._subparsers._group_actions[0].choices]  # type: ignore[union-attr]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"usage: minillm {command}" in capsys.readouterr().out


def test_commands_are_the_documented_ones() -> None:
    assert set(COMMANDS) == {"serve", "health", "models", "chat", "config", "demo", "usage"}


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_health(gateway: str, dead_url: str) -> None:
    ok = minillm("health", gateway)
    assert ok.returncode == 0 and ok.stdout.startswith(f"ok  {gateway}  ("), ok
    from_env = minillm("health", env={"MINI_LLM_URL": gateway + "/v1"})  # SDK base URL is fine
    assert from_env.returncode == 0, from_env
    providers = minillm("health", "--providers", gateway)
    assert providers.returncode == 0, providers
    mock = next(line for line in providers.stdout.splitlines() if line.startswith("mock "))
    assert "breaker closed" in mock and "in flight 0" in mock
    down = minillm("health", dead_url)
    assert down.returncode == 1 and down.stdout == ""
    assert down.stderr == f"minillm: cannot reach the gateway at {dead_url} (is it running?)\n"


def test_models(gateway: str) -> None:
    listed = minillm("models", gateway)
    assert listed.returncode == 0, listed
    assert listed.stdout == "fast  -> mock:mock-1, mock:mock-echo\n"
    raw = minillm("models", gateway, "--json")
    assert json.loads(raw.stdout)["data"][0]["id"] == "fast"


def test_chat_streams_the_reply(gateway: str) -> None:
    streamed = minillm("chat", "--url", gateway, "hello gateway")
    assert (streamed.returncode, streamed.stdout) == (0, "You said: hello gateway\n"), streamed
    anthropic = minillm("chat", "--url", gateway, "--format", "anthropic", "-m", "claude-x", "hi")
    assert (anthropic.returncode, anthropic.stdout) == (0, "You said: hi\n"), anthropic
    piped = minillm("chat", "--url", gateway, "--no-stream", "-v", "-m", "fast", "-", stdin="x y")
    assert (piped.stdout, piped.stderr) == ("You said: x y\n", "[mock:mock-1]\n"), piped
    for stream in ([], ["--no-stream"]):
        responses = minillm("chat", "--url", gateway, "--format", "responses", *stream, "hey")
        assert (responses.returncode, responses.stdout) == (0, "You said: hey\n"), responses


def test_chat_failures_are_one_line_with_exit_1(gateway: str, dead_url: str) -> None:
    bad = minillm("chat", "--url", gateway, "--model", " spaced ", "hi")
    assert bad.returncode == 1
    assert re.fullmatch(r"minillm: gateway error \(HTTP 400\): 'model' must not .*\n", bad.stderr)
    down = minillm("chat", "--url", dead_url, "hi")
    assert down.returncode == 1 and "cannot reach the gateway" in down.stderr
    usage = minillm("chat", "--max-tokens", "many", "hi")
    assert usage.returncode == 2 and "invalid int value" in usage.stderr


def test_config_masks_every_key() -> None:
    env = {
        "OPENAI_API_KEY": f"{SECRET},short-key",
        "MINI_LLM_PROVIDER_LOCAL_URL": "http://user:pw@localhost:8000/v1",
        "MINI_LLM_MODEL_ALIASES": ALIASES,
        "MINI_LLM_USAGE_DB": "postgresql://minillm:db-pw@db.internal/usage",
        "MINI_LLM_REDIS_URL": "rediss://:redis-pw@cache.internal:6380/0",
    }
    shown = minillm("config", env=env)
    assert shown.returncode == 0, shown
    assert "mode: online" in shown.stdout
    assert "keys: sk-...wxyz, ***" in shown.stdout
    assert "http://***@localhost:8000/v1" in shown.stdout
    assert "usage_db = postgresql://***@db.internal/usage" in shown.stdout
    assert "redis_url = rediss://***@cache.internal:6380/0" in shown.stdout
    assert "fast -> mock:mock-1, mock:mock-echo" in shown.stdout
    as_json = minillm("config", "--json", env=env)
    described = json.loads(as_json.stdout)
    assert described["providers"]["openai"]["keys"] == ["sk-...wxyz", "***"]
    for output in (shown.stdout, as_json.stdout):
        assert SECRET not in output and "short-key" not in output and ":pw@" not in output
        assert "redis-pw" not in output
        assert "db-pw" not in output


def test_mask_secret() -> None:
    assert mask_secret(SECRET) == "sk-...wxyz"
    assert mask_secret("12345678901") == "***"


def test_config_error_exits_2() -> None:
    result = minillm("config", env={"MINI_LLM_PORT": "abc"})
    assert result.returncode == 2
    assert result.stderr.startswith("minillm: configuration error: MINI_LLM_PORT")


def test_demo_runs_offline_and_cleans_up() -> None:
    result = minillm("demo", timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "offline" in out and "failed" not in out.lower()
    steps = (
        "GET /health",
        "GET /v1/models",
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/responses",
    )
    for step in steps:
        assert step in out
    assert "You said: Name one river." in out
    assert "fast  -> mock:mock-1" in out
    assert "You said: Stream a haiku." in out
    assert "translated Anthropic Messages -> OpenAI Chat Completions and back" in out
    assert "translated OpenAI Responses -> OpenAI Chat Completions and back" in out
    assert out.rstrip().endswith("gateway stopped.")
    pid = int(re.search(r"\(pid (\d+)\)", out).group(1))  # type: ignore[union-attr]
    wait_gone(pid)


def test_usage_when_recording_is_off() -> None:
    off = minillm("usage")
    assert (off.returncode, off.stdout) == (1, "")
    assert off.stderr == (
        "minillm: usage recording is off (MINI_LLM_USAGE_DB or the config file's usage_db"
        " is 'off'): no usage to report\n"
    )


GATEWAY_KEY = "sk-gw-cli-0123456789"


def test_client_commands_against_a_keyed_gateway() -> None:
    """What README's command table and docs/team.md say: --api-key or MINI_LLM_API_KEY."""
    keyed = {
        **OFFLINE,
        "MINI_LLM_AUTH_KEYS": f"cli:{GATEWAY_KEY}",
        "MINI_LLM_MODEL_ALIASES": ALIASES,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "minillm", "serve", "--port", "0"],
        env=clean_env(keyed),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        refused = minillm("models", url)
        assert refused.returncode == 1 and "Missing gateway API key" in refused.stderr
        assert minillm("models", url, "--api-key", GATEWAY_KEY).stdout.startswith("fast  ->")
        from_env = {"MINI_LLM_URL": url, "MINI_LLM_API_KEY": GATEWAY_KEY}
        assert minillm("models", env=from_env).stdout.startswith("fast  ->")
        chat = minillm("chat", "--url", url, "--api-key", GATEWAY_KEY, "hi")
        assert chat.stdout == "You said: hi\n", chat
        assert minillm("chat", "hi", env=from_env).stdout == "You said: hi\n"
    finally:
        process.kill()
        process.wait(10)
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("### Commands")[1].split("### Embedding")[0]
    team = (Path(__file__).parent.parent / "docs" / "team.md").read_text()
    for text in (table, team):
        assert all(w in text for w in ("--api-key", "MINI_LLM_API_KEY", "MINI_LLM_URL")), text
