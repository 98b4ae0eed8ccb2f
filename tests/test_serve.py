"""The served gateway as a process: start-up, port choice, config errors, SIGTERM drain."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys

import httpx
import pytest
import trio

from gateway_fixtures import gateway_env
from processes import clean_env, serving
from upstream import FakeUpstream, SlowStream

STREAM = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}


async def test_config_error_exits_2_naming_the_variable() -> None:
    for env, name in (
        ({"MINI_LLM_PORT": "abc"}, "MINI_LLM_PORT"),
        ({"MINI_LLM_MODEL_ALIASES": "{oops"}, "MINI_LLM_MODEL_ALIASES"),
        ({"MINI_LLM_MODEL_ALIASES": '{"a": "nope:model"}'}, "unknown provider 'nope'"),
    ):
        result = await trio.run_process(
            [sys.executable, "-m", "minillm", "serve"],
            env=clean_env(env),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert result.returncode == 2
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and name in lines[0], lines


async def _serve_fails(args: list[str], env: dict[str, str] | None = None) -> str:
    """Run ``minillm serve ARGS``, expecting exit 2 and one line on stderr: that line."""
    result = await trio.run_process(
        [sys.executable, "-m", "minillm", "serve", *args],
        env=clean_env({"MINI_LLM_USAGE_DB": "off", **(env or {})}),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    lines = result.stderr.decode().splitlines()
    assert (result.returncode, len(lines), result.stdout) == (2, 1, b""), lines
    return lines[0]


async def test_flags_are_checked_like_the_variables() -> None:
    for port in ("99999", "-1", "abc", "1.5"):
        flag = await _serve_fails(["--port", port])
        env = await _serve_fails([], {"MINI_LLM_PORT": port})
        assert flag.startswith("minillm: configuration error: --port: expected")
        assert flag.replace("--port", "MINI_LLM_PORT") == env
    level = await _serve_fails(["--log-level", "loud"])
    assert (
        level == "minillm: configuration error: --log-level: expected debug, info, warning,"
        " error or critical"
    )
    assert "--log-format: expected text or json" in await _serve_fails(["--log-format", "xml"])
    bad_host = "minillm: configuration error: --host: cannot resolve host 'not-a-host.invalid'"
    assert await _serve_fails(["--host", "not-a-host.invalid"]) == bad_host
    keyed = {"MINI_LLM_AUTH_KEYS": "ops:0123456789abcdef"}  # not the "no keys" refusal either
    assert await _serve_fails(["--host", "not-a-host.invalid"], keyed) == bad_host
    refused = await _serve_fails(["--host", "0.0.0.0"])
    assert "--host: refusing to listen on 0.0.0.0 without gateway keys" in refused


async def test_a_taken_port_that_was_asked_for_is_an_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        error = f"minillm: configuration error: --port: port {port} is already in use"
        assert await _serve_fails(["--port", port]) == error
        env = await _serve_fails([], {"MINI_LLM_PORT": port})
        assert env == error.replace("--port", "MINI_LLM_PORT")


async def test_only_the_default_port_moves_and_says_so() -> None:
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 3333))
            taken.listen()
        except OSError:
            pass  # taken by someone else already: as good
        async with serving({}, ("serve",)) as served:
            assert served.url != "http://127.0.0.1:3333"
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{served.url}/health")).json() == {"status": "ok"}
            moved = f"the default port 3333 is in use: listening on {served.url.rsplit(':', 1)[1]}"
            with trio.fail_after(5):  # stderr is read by another task
                while moved.encode() not in served.stderr:
                    await trio.sleep(0.05)


async def test_a_wave_of_new_clients_is_served_by_several_acceptors() -> None:
    """Every client of a simultaneous wave gets its answer; Hypercorn's several
    listeners on the one socket announce it once."""
    async with serving({}) as served:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            statuses: list[int] = []

            async def one() -> None:
                statuses.append((await client.get(f"{served.url}/health")).status_code)

            async with trio.open_nursery() as nursery:
                for _ in range(300):
                    nursery.start_soon(one)
        assert statuses == [200] * 300
        served.process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await served.process.wait() == 0
    assert served.stderr.count(b"Running on") == 1, served.stderr.decode()


async def test_sigterm_drains_in_flight_stream_then_exits_0(upstream: FakeUpstream) -> None:
    upstream.push(SlowStream(chunks=20, interval=0.05))
    env = gateway_env(upstream.url, MINI_LLM_SHUTDOWN_GRACE="5")
    async with serving(env) as served, httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", f"{served.url}/v1/chat/completions", json=STREAM) as r:
            assert r.status_code == 200
            chunks = []
            async for chunk in r.aiter_bytes():
                if not chunks:
                    served.process.send_signal(signal.SIGTERM)
                    await trio.sleep(0.3)
                    with pytest.raises(httpx.ConnectError):  # no longer accepting
                        await httpx.AsyncClient().get(f"{served.url}/health")
                chunks.append(chunk)
        body = b"".join(chunks)
        assert body.endswith(b"data: [DONE]\n\n")
        with trio.fail_after(10):
            assert await served.process.wait() == 0


async def test_sigterm_ends_long_streams_cleanly_within_grace(upstream: FakeUpstream) -> None:
    upstream.push(SlowStream(chunks=1000, interval=0.05))
    env = gateway_env(upstream.url, MINI_LLM_SHUTDOWN_GRACE="1")
    async with serving(env) as served, httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", f"{served.url}/v1/chat/completions", json=STREAM) as r:
            chunks = []
            async for chunk in r.aiter_bytes():  # a complete chunked body: no cut connection
                if not chunks:
                    served.process.send_signal(signal.SIGTERM)
                chunks.append(chunk)
        last = b"".join(chunks).rstrip().rsplit(b"\n\n", 1)[-1]
        assert last.startswith(b'data: {"error"') and b"shutting down" in last
        with trio.fail_after(5):
            assert await served.process.wait() == 0
        await upstream.wait_disconnect(timeout=2)
        assert b"Traceback" not in served.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _hypercorn(env: dict[str, str], *requests: dict[str, object]) -> list[str]:
    """Serve the factory with real Hypercorn, send ``requests``, stop it: its stderr lines."""
    port = _free_port()
    command = [sys.executable, "-m", "hypercorn", "--worker-class", "trio"]
    command += ["--bind", f"127.0.0.1:{port}", "minillm.app:create_app()"]
    proc = subprocess.Popen(
        command, env=clean_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(20):
                while True:
                    try:
                        r = await client.get(f"http://127.0.0.1:{port}/health")
                        break
                    except httpx.ConnectError:
                        await trio.sleep(0.1)
            assert r.json() == {"status": "ok"}
            for body in requests:
                r = await client.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json=body,
                    headers={"x-request-id": "req-hypercorn-1"},
                )
                assert r.status_code == 200, r.text  # offline: served by the mock provider
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    return err.decode().splitlines()


HI = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


async def test_hypercorn_factory_logs_like_serve() -> None:
    """The factory sets up logging as `minillm serve` does: JSON lines, the access log."""
    lines = await _hypercorn({"MINI_LLM_LOG_FORMAT": "json", "MINI_LLM_USAGE_DB": "off"}, HI)
    ours = [json.loads(line) for line in lines if line.startswith("{")]
    access = [r for r in ours if r["logger"] == "minillm.access" and r["path"] != "/health"]
    assert len(access) == 1, lines
    assert access[0]["request_id"] == "req-hypercorn-1"
    assert (access[0]["status"], access[0]["target"], access[0]["key"]) == (200, "mock:gpt-4o", "-")
    assert any("offline mock" in r["message"] for r in ours)
    # Hypercorn's own lines keep its format, and none is written twice
    assert len([line for line in lines if "Running on" in line]) == 1, lines
    assert all(line.startswith(("{", "[")) for line in lines), lines


async def test_hypercorn_factory_log_level() -> None:
    env = {"MINI_LLM_LOG_LEVEL": "warning", "MINI_LLM_USAGE_DB": "off"}
    lines = await _hypercorn(env, HI)
    assert not any("req-hypercorn-1" in line for line in lines), lines  # no INFO access line
    assert any("WARNING minillm.server: no provider keys" in line for line in lines), lines


def test_factory_configures_logging_once_and_never_over_the_apps_own() -> None:
    script = (
        "import logging, minillm.app as m; m.create_app(); m.create_app();"
        " print(len(logging.getLogger().handlers), logging.getLogger().level)"
    )
    env = clean_env({"MINI_LLM_USAGE_DB": "off", "MINI_LLM_LOG_LEVEL": "error"})
    own = "import logging; logging.basicConfig(level=logging.DEBUG);"
    for prelude, level in (("", logging.ERROR), (own, logging.DEBUG)):
        run = subprocess.run(
            [sys.executable, "-c", prelude + script], env=env, capture_output=True, check=True
        )
        assert run.stdout.split() == [b"1", str(level).encode()], run
