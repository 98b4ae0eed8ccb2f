"""The served gateway as a process: start-up, port choice, config errors, SIGTERM drain."""

from __future__ import annotations

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


async def test_taken_port_moves_to_the_next_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with serving({}, ("serve", "--port", str(port))) as served:
            assert served.url != f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{served.url}/health")).json() == {"status": "ok"}


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


async def test_hypercorn_factory_serves() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypercorn",
            "--worker-class",
            "trio",
            "--bind",
            f"127.0.0.1:{port}",
            "minillm.app:create_app()",
        ],
        env=clean_env({}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
            r = await client.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"model": "x", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200, r.text  # offline: served by the mock provider
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
