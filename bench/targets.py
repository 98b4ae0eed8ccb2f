"""The targets under test: how each is started, pinned, probed, measured and stopped."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
WORKERS_TARGET = "minillm-workers2"  # `minillm serve --workers 2`, against "minillm"
ALL_TARGETS = ("direct", "floor", "minillm", WORKERS_TARGET, "minillm-hypercorn", "litellm")
DEFAULT_TARGETS = ALL_TARGETS


@dataclass(frozen=True, slots=True)
class Pinning:
    gateway: set[int] | None  # the gateway's core
    load: set[int] | None  # load generator + fake provider

    @classmethod
    def detect(cls, enabled: bool) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls({cpus[0]}, set(cpus[1:]))

    def gateway_cores(self, n: int) -> set[int] | None:
        """The gateway's core and, for ``n`` workers, the next ``n - 1`` (shared with the load)."""
        if self.gateway is None:
            return None
        return set(sorted(self.gateway | (self.load or set()))[:n])


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    translates: bool  # can serve cross-format requests
    command: Callable[[int, Path], list[str]] | None  # (port, workdir) -> argv; None: direct
    workers: int = 1  # worker processes: the cores it is pinned to


@dataclass(frozen=True, slots=True)
class Running:
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None

    def _tree(self) -> list[psutil.Process]:
        """The process and its children (Hypercorn runs its worker as a child)."""
        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _sum(self, measure: Callable[[psutil.Process], float]) -> float:
        total = 0.0
        for p in self._tree():
            try:
                total += measure(p)
            except psutil.NoSuchProcess:
                continue
        return total

    def rss_mb(self) -> float:
        """RSS of the whole process tree."""
        return self._sum(lambda p: p.memory_info().rss) / 2**20

    def cpu_s(self) -> float:
        """CPU time (user + system) of the whole process tree so far."""
        return self._sum(lambda p: sum(p.cpu_times()[:2]))


def _tool(name: str) -> list[str]:
    exe = BIN / name
    return [str(exe)] if exe.exists() else [sys.executable, "-m", name]


def _hypercorn(app: str) -> Callable[[int, Path], list[str]]:
    return lambda port, _: [
        *_tool("hypercorn"),
        "--worker-class",
        "trio",
        "--bind",
        f"{HOST}:{port}",
        app,
    ]


def _minillm_cli(workers: int) -> Callable[[int, Path], list[str]]:
    exe = BIN / "minillm"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "minillm"]
    more = ["--workers", str(workers)] if workers > 1 else []
    return lambda port, _: [*base, "serve", "--host", HOST, "--port", str(port), *more]


def _litellm(port: int, workdir: Path) -> list[str]:
    exe = shutil.which("litellm", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert exe is not None
    return [
        exe,
        "--config",
        str(workdir / "litellm.yaml"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]


TARGETS = {
    "direct": Target("direct", False, None),
    "floor": Target("floor", False, _hypercorn("bench.floor:create_app()")),
    "minillm": Target("minillm", True, _minillm_cli(1)),
    WORKERS_TARGET: Target(WORKERS_TARGET, True, _minillm_cli(2), workers=2),
    "minillm-hypercorn": Target("minillm-hypercorn", True, _hypercorn("minillm.app:create_app()")),
    "litellm": Target("litellm", True, _litellm),
}


def unavailable(name: str) -> str | None:
    """Why a target cannot run here, or ``None``."""
    if name.startswith("minillm") and importlib.util.find_spec("minillm") is None:
        return "minillm is not installed in this Python (pip install -e .)"
    if name == "minillm-hypercorn" and importlib.util.find_spec("minillm.app") is None:
        return "minillm.app:create_app is missing"
    if (
        name == "litellm"
        and shutil.which("litellm", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}") is None
    ):
        return "litellm is not installed (pip install 'litellm[proxy]' to compare)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def gateway_env(provider_port: int) -> dict[str, str]:
    env = _clean_env()
    env.update(
        {
            "OPENAI_API_KEY": "sk-bench",
            "ANTHROPIC_API_KEY": "sk-bench",
            "MINI_LLM_OPENAI_BASE_URL": f"http://{HOST}:{provider_port}/v1",
            "MINI_LLM_ANTHROPIC_BASE_URL": f"http://{HOST}:{provider_port}",
            "FLOOR_UPSTREAM": f"http://{HOST}:{provider_port}",
        }
    )
    return env


def write_litellm_config(workdir: Path, provider_port: int, models: list[str]) -> None:
    lines = ["model_list:"]
    for model in models:
        prefix, base = (
            ("anthropic", f"http://{HOST}:{provider_port}")
            if "claude" in model
            else ("openai", f"http://{HOST}:{provider_port}/v1")
        )
        lines += [
            f"  - model_name: {model}",
            "    litellm_params:",
            f"      model: {prefix}/{model}",
            f"      api_base: {base}",
            "      api_key: sk-bench",
        ]
    (workdir / "litellm.yaml").write_text("\n".join(lines) + "\n")


def spawn(
    argv: list[str], env: dict[str, str], cpus: set[int] | None, log: Path
) -> subprocess.Popen[bytes]:
    if cpus and (taskset := shutil.which("taskset")):
        argv = [taskset, "-c", ",".join(map(str, sorted(cpus))), *argv]
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
        )


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"not listening after {_START_TIMEOUT_S:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful), then SIGKILL the process group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(_STOP_TIMEOUT_S)


@contextmanager
def fake_provider(workdir: Path, cpus: set[int] | None) -> Iterator[int]:
    port = free_port()
    log = workdir / "fake_provider.log"
    proc = spawn(
        [sys.executable, "-m", "bench.fake_provider", "--port", str(port)], _clean_env(), cpus, log
    )
    try:
        wait_listening(port, proc, log)
        yield port
    finally:
        stop(proc)


@contextmanager
def running(
    target: Target, provider_port: int, workdir: Path, cpus: set[int] | None
) -> Iterator[Running]:
    if target.command is None:
        yield Running(target.name, provider_port, None)
        return
    port = free_port()
    log = workdir / f"{target.name}.log"
    env = gateway_env(provider_port)
    # usage accounting stays on (it is part of the cost) but out of the user's own database
    env["MINI_LLM_USAGE_DB"] = str(workdir / f"{target.name}-usage.db")
    proc = spawn(target.command(port, workdir), env, cpus, log)
    try:
        wait_listening(port, proc, log)
        yield Running(target.name, port, proc)
    finally:
        stop(proc)


def log_tail(workdir: Path, name: str) -> str:
    return _tail(workdir / f"{name}.log")
