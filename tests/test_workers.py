"""``minillm serve --workers N``: one socket, every worker serves, a dead worker comes back,
SIGTERM drains them all, /metrics adds them up; settings and refusals."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
import trio

from minillm.core.config import Config, ConfigError
from processes import Served, clean_env, serving

WORKERS = ("serve", "--port", "0", "--workers", "2")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
STARTED = re.compile(rb"worker (\d) started \(pid (\d+)\)")
ACCESS = re.compile(rb"minillm\.access\[(\d+)\]: POST")


def worker_pids(served: Served) -> dict[int, int]:
    """The latest pid of each worker slot, from the supervisor's log."""
    return {int(i): int(pid) for i, pid in STARTED.findall(served.stderr)}


async def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.05)


async def requests_counted(client: httpx.AsyncClient, url: str) -> float:
    text = (await client.get(f"{url}/metrics")).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("minillm_requests_total{")
    )


async def post_many(client: httpx.AsyncClient, url: str, n: int) -> None:
    async def one() -> None:
        r = await client.post(f"{url}/v1/chat/completions", json=CHAT)
        assert r.status_code == 200, r.text

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)


async def test_both_workers_serve_metrics_add_up_and_a_killed_worker_comes_back(
    tmp_path: Path,
) -> None:
    env = {"MINI_LLM_MOCK_DELAY": "0.01", "MINI_LLM_USAGE_DB": "off", "TMPDIR": str(tmp_path)}
    async with serving(env, WORKERS) as served, httpx.AsyncClient(timeout=10) as client:
        (metrics_dir,) = tmp_path.glob("minillm-metrics-*")  # the supervisor's own
        first = worker_pids(served)
        assert len(first) == 2 and served.process.pid not in first.values()
        assert served.stderr.count(b"listening on") == 0  # the one URL went to stdout
        sent = 0

        def answered() -> set[int]:
            return {int(p) for p in ACCESS.findall(served.stderr)}

        for _ in range(3):  # the kernel picks a worker per connection: until both answered
            await post_many(client, served.url, 20)  # 20 connections at once
            sent += 20
            await eventually(lambda: len(ACCESS.findall(served.stderr)) == sent)  # noqa: B023
            if answered() == set(first.values()):
                break
        else:  # one worker took every wave (it woke first each time): pause it, the other serves
            (busy,) = answered()
            os.kill(busy, signal.SIGSTOP)
            try:  # on new connections: the kept-alive ones belong to the paused worker
                async with httpx.AsyncClient(timeout=10) as fresh:
                    await post_many(fresh, served.url, 10)
                sent += 10
            finally:
                os.kill(busy, signal.SIGCONT)
            await eventually(lambda: len(ACCESS.findall(served.stderr)) == sent)  # noqa: B023
        assert answered() == set(first.values())
        assert await requests_counted(client, served.url) == sent  # whichever worker answers

        os.kill(first[1], signal.SIGKILL)
        await eventually(lambda: worker_pids(served)[1] != first[1])
        assert f"worker 1 (pid {first[1]}) exited with code -9; restarting".encode() in (
            served.stderr
        )
        await post_many(client, served.url, 10)
        await eventually(lambda: len(ACCESS.findall(served.stderr)) == sent + 10)
        assert await requests_counted(client, served.url) == sent + 10  # the dead one's count too
        served.process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await served.process.wait() == 0
    assert not metrics_dir.exists()
    for pid in [*first.values(), worker_pids(served)[1]]:
        with pytest.raises(ProcessLookupError):  # no worker outlives the supervisor
            os.kill(pid, 0)


async def test_sigterm_under_load_drains_every_worker_and_exits_0(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(20))  # 20 deltas, 50 ms apart: ~1 s a stream
    stream = {**CHAT, "messages": [{"role": "user", "content": words}], "stream": True}
    db = str(tmp_path / "usage.db")  # one SQLite file for both workers
    env = {"MINI_LLM_MOCK_DELAY": "0.05", "MINI_LLM_USAGE_DB": db}
    env["MINI_LLM_SHUTDOWN_GRACE"] = "5"
    bodies: list[bytes] = []
    async with serving(env, WORKERS) as served, httpx.AsyncClient(timeout=15) as client:
        begun = trio.Semaphore(0)

        async def one() -> None:
            async with client.stream("POST", f"{served.url}/v1/chat/completions", json=stream) as r:
                assert r.status_code == 200
                chunks = []
                async for chunk in r.aiter_bytes():
                    if not chunks:
                        begun.release()
                    chunks.append(chunk)
            bodies.append(b"".join(chunks))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(one)
            for _ in range(20):
                await begun.acquire()
            served.process.send_signal(signal.SIGTERM)
            await trio.sleep(0.5)
            with pytest.raises(httpx.ConnectError):  # no longer accepting
                await httpx.AsyncClient().get(f"{served.url}/health")
        with trio.fail_after(10):
            assert await served.process.wait() == 0
    assert len(bodies) == 20 and all(b.endswith(b"data: [DONE]\n\n") for b in bodies)
    assert served.stderr.count(b"SIGTERM: draining in-flight requests") == 2
    assert b"Traceback" not in served.stderr
    report = await trio.run_process(
        [sys.executable, "-m", "minillm", "usage", "--db", db, "--by", "model", "--json"],
        env=clean_env({}),
        capture_stdout=True,
    )
    (row,) = orjson.loads(report.stdout)  # every worker flushed its rows while draining
    assert (row["requests"], row["errors"]) == (20, 0)


async def test_workers_drain_and_exit_when_the_supervisor_is_killed() -> None:
    env = {"MINI_LLM_MOCK_DELAY": "0", "MINI_LLM_USAGE_DB": "off"}
    async with serving(env, WORKERS) as served:
        pids = worker_pids(served).values()
        served.process.kill()
        await served.process.wait()

        def gone(pid: int) -> bool:  # exited (a zombie counts: reaping is init's job now)
            try:
                return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
            except FileNotFoundError:
                return True

        await eventually(lambda: all(gone(pid) for pid in pids))
        assert served.stderr.count(b"the supervisor is gone: draining") == 2


async def test_a_worker_that_cannot_start_stops_the_server_with_exit_1(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(  # only the spawned workers die (exit 1)
        "import sys\nif '--multiprocessing-fork' in sys.argv:\n    sys.exit(3)\n"
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    done = await trio.run_process(
        [sys.executable, "-m", "minillm", *WORKERS],
        env=clean_env({"PYTHONPATH": path, "MINI_LLM_USAGE_DB": "off"}),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, b"")  # no URL
    last = done.stderr.decode().splitlines()[-1]
    assert re.fullmatch(r"minillm: worker \d exited with code 1 before it was ready .*", last)


async def test_limits_per_key_refuse_several_workers_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "limits.toml"
    path.write_text("[[auth.keys]]\nname = 'a'\nkey = 'sk-gw-a-123456'\nrpm = 60\n")
    done = await trio.run_process(
        [sys.executable, "-m", "minillm", "serve", "--port", "0", "--config", str(path)],
        env=clean_env({"MINI_LLM_WORKERS": "2"}),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 2
    (line,) = done.stderr.decode().splitlines()
    assert "MINI_LLM_WORKERS" in line and "per process" in line and "Redis" in line


def test_workers_setting(tmp_path: Path) -> None:
    assert Config.load({}).workers == 1
    (tmp_path / "c.toml").write_text("workers = 'auto'\n")
    cpus = len(os.sched_getaffinity(0))
    assert Config.load({}, config_file=tmp_path / "c.toml").workers == cpus
    assert Config.load({"MINI_LLM_WORKERS": "3"}).workers == 3
    assert Config.load({"MINI_LLM_WORKERS": "auto"}).workers == cpus
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ConfigError, match="MINI_LLM_WORKERS"):
            Config.load({"MINI_LLM_WORKERS": bad})
    keys = {"MINI_LLM_AUTH_KEYS": "a:sk-gw-a-123456"}
    assert Config.load({**keys, "MINI_LLM_WORKERS": "2"}).workers == 2  # no limits: fine
