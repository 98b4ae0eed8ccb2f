"""The SDK: open_gateway() in the test's Trio run, start() as a background process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio

import minillm
from minillm.core.config import Config, ConfigError
from processes import clean_env

HI: list[Any] = [{"role": "user", "content": "hi there"}]  # fits both SDKs' message types


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider keys or minillm settings inherited by start()'s children."""
    for name in list(os.environ):
        if name.startswith(("OPENAI", "ANTHROPIC", "MINI_LLM")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MINI_LLM_MOCK_DELAY", "0")
    monkeypatch.setenv("MINI_LLM_SHUTDOWN_GRACE", "2")
    monkeypatch.setenv("MINI_LLM_USAGE_DB", "off")


def gone(pid: int) -> bool:
    """The process has exited (a zombie left for a non-reaping init counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def wait_gone(pid: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.05)


# --- in the caller's Trio run ---------------------------------------------------------


async def test_open_gateway_serves_sdk_clients_and_stops() -> None:
    async with minillm.open_gateway(Config.load({}, mock_chunk_delay=0)) as gw:
        assert gw.url.startswith("http://127.0.0.1:")
        assert gw.base_url_openai == f"{gw.url}/v1"
        assert gw.base_url_anthropic == f"{gw.url}/anthropic"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{gw.url}/health")).json() == {"status": "ok"}
        async with gw.async_openai_client() as openai_client:
            stream = await openai_client.chat.completions.create(
                model="gpt-4o-mini",
                messages=HI,
                stream=True,
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "You said: hi there"
        async with gw.async_anthropic_client() as anthropic_client:
            message = await anthropic_client.messages.create(
                model="claude-x",
                max_tokens=50,
                messages=HI,
            )
            assert message.content[0].text == "You said: hi there"  # type: ignore[union-attr]
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"{gw.url}/health")


async def test_leaving_the_block_lets_an_in_flight_stream_finish() -> None:
    words = "one two three four five six seven eight"
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": words}]}
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:
        async with minillm.open_gateway(Config.load({}, mock_chunk_delay=0.03)) as gw:
            started = trio.Event()

            async def read_stream() -> None:
                url = f"{gw.url}/v1/chat/completions"
                async with (
                    httpx.AsyncClient() as client,
                    client.stream("POST", url, json=body) as r,
                ):
                    started.set()
                    received.extend([chunk async for chunk in r.aiter_bytes()])

            nursery.start_soon(read_stream)
            await started.wait()
        # open_gateway returned only after the stream was drained
        assert b"data: [DONE]" in b"".join(received)


async def test_an_error_in_the_block_propagates_unwrapped() -> None:
    with pytest.raises(ValueError, match="boom"):
        async with minillm.open_gateway(Config.load({})):
            raise ValueError("boom")


def test_sdk_clients_need_the_optional_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError, match=r"minillm\[clients\]"):
        minillm.RunningGateway("http://127.0.0.1:1").openai_client()


# --- in a background process ----------------------------------------------------------


def test_start_runs_a_reusable_background_gateway(offline: None) -> None:
    aliases = '{"fast": "mock:mock-1"}'
    gw = minillm.start(port=0, env={"MINI_LLM_MODEL_ALIASES": aliases})
    try:
        assert gw.owned and gw.running and gw.pid
        assert minillm.start(port=0) is gw  # one gateway per process per port
        models = httpx.get(f"{gw.base_url_openai}/models").json()
        assert [m["id"] for m in models["data"]] == ["fast"]  # env reached the child
        with gw.openai_client(max_retries=0) as client:
            reply = client.chat.completions.create(model="fast", messages=HI)
            assert reply.choices[0].message.content == "You said: hi there"
        with gw.anthropic_client(max_retries=0) as anthropic_client:
            message = anthropic_client.messages.create(
                model="claude-x",
                max_tokens=50,
                messages=HI,
            )
            assert message.content[0].text == "You said: hi there"  # type: ignore[union-attr]
        port = int(gw.url.rsplit(":", 1)[1])
        same = minillm.start(port=port)  # found answering on its port: reused, not owned
        assert same.url == gw.url and not same.owned
        same.stop()
        assert gw.running
        assert "GET /health" in gw.logs()
    finally:
        gw.stop()
    assert not gw.running
    assert gw.pid is not None and gone(gw.pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gw.url}/health")


@pytest.fixture
def other_process_gateway() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    env = clean_env({"MINI_LLM_MOCK_DELAY": "0"})
    command = [sys.executable, "-m", "minillm", "serve", "--port", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert line.startswith("minillm listening on "), line
        yield process, line.split()[-1]
    finally:
        process.kill()
        process.wait(10)


def test_start_reuses_a_gateway_another_process_runs(
    offline: None, other_process_gateway: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, url = other_process_gateway
    gw = minillm.start(port=int(url.rsplit(":", 1)[1]))
    assert gw.url == url and not gw.owned and gw.pid is None
    with gw:  # leaving the block must not stop a gateway this process did not start
        assert httpx.get(f"{gw.url}/health").json() == {"status": "ok"}
    assert process.poll() is None


def test_start_failure_reports_the_child_stderr(offline: None) -> None:
    with pytest.raises(minillm.GatewayStartError) as caught:
        minillm.start(port=0, env={"MINI_LLM_MAX_BODY_BYTES": "-1"})
    assert caught.value.returncode == 2
    assert "exited with code 2" in str(caught.value)
    assert "MINI_LLM_MAX_BODY_BYTES: expected a positive number" in str(caught.value)


def test_start_timeout_is_reported(offline: None) -> None:
    with pytest.raises(minillm.GatewayStartError, match=r"not ready within 0\.01s"):
        minillm.start(port=0, host="127.0.0.2", timeout=0.01)


def test_bad_default_port_is_a_config_error(offline: None) -> None:
    with pytest.raises(ConfigError, match="MINI_LLM_PORT"):
        minillm.start(env={"MINI_LLM_PORT": "abc"})


PARENT = textwrap.dedent(
    """
    import sys, minillm
    gw = minillm.start(port=0)
    print(gw.pid, gw.url, flush=True)
    sys.stdin.read()  # then exit normally
    """
)


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGKILL, None], ids=["SIGTERM", "SIGKILL", "exit"]
)
def test_no_orphan_when_the_parent_exits(offline: None, signum: signal.Signals | None) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    child_pid = None
    try:
        assert parent.stdin is not None and parent.stdout is not None
        pid, url = parent.stdout.readline().decode().split()
        child_pid = int(pid)
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        if signum is None:
            parent.stdin.close()
        else:
            parent.send_signal(signum)
        assert parent.wait(10) == (-signum if signum else 0)
        wait_gone(child_pid)  # the child saw its stdin close (or got SIGTERM at exit)
    finally:
        parent.kill()
        parent.wait(10)
        if child_pid is not None and not gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)
