"""The gateway as a child process: spawn, wait for its URL, keep its stderr tail, stop.

Used by :func:`minillm.start`.  The child runs ``python -m minillm serve
--watch-stdin`` in its own session (a Ctrl-C meant for the app does not reach
it).  Its stdin is a pipe that nothing writes to: when this process exits for
any reason, even SIGKILL, the kernel closes the pipe and the child drains and
exits on end-of-file, so it is never orphaned.  (``PR_SET_PDEATHSIG`` is not
used: it fires when the *thread* that spawned the child exits, which would
kill a gateway started from a short-lived worker thread.)
"""

from __future__ import annotations

import collections
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO

import httpx
import orjson

__all__ = ["READY_PREFIX", "Child", "GatewayStartError", "is_healthy", "spawn"]

READY_PREFIX = "minillm listening on "
_TAIL_LINES = 40


class GatewayStartError(RuntimeError):
    """The gateway did not start; the message ends with the tail of its stderr."""

    def __init__(self, message: str, stderr: str = "", returncode: int | None = None) -> None:
        self.stderr = stderr
        self.returncode = returncode
        detail = "\n".join("  " + line for line in stderr.splitlines()) or "  (no output)"
        super().__init__(f"{message}; its stderr:\n{detail}")


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """True when ``GET {url}/health`` answers ``{"status": "ok"}``."""
    try:
        response = httpx.get(f"{url}/health", timeout=timeout)
        return response.status_code == 200 and orjson.loads(response.content) == {"status": "ok"}
    except (httpx.HTTPError, orjson.JSONDecodeError):
        return False


class _Reader:
    """Drain one pipe in a daemon thread: keep its last lines, queue them if asked."""

    def __init__(self, pipe: IO[bytes], lines: queue.Queue[str | None] | None = None) -> None:
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._lock = threading.Lock()
        self._lines = lines  # lines are queued until the ready line
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self._thread.start()

    def _run(self, pipe: IO[bytes]) -> None:
        with pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "replace").rstrip()
                with self._lock:
                    self._tail.append(line)
                if self._lines is not None:
                    self._lines.put(line)
                    if line.startswith(READY_PREFIX):
                        self._lines = None
        if self._lines is not None:
            self._lines.put(None)

    def tail(self) -> str:
        with self._lock:
            return "\n".join(self._tail)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class Child:
    """A running ``minillm serve`` child process."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: _Reader, stdout: _Reader):
        self.process = process
        self._stderr = stderr
        self._stdout = stdout

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stderr_tail(self) -> str:
        """The last lines the child wrote to stderr (its log)."""
        return self._stderr.tail()

    def terminate(self) -> None:
        """SIGTERM without waiting: the child drains and exits on its own."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float) -> None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout`` seconds."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin is not None:
            process.stdin.close()
        self._stdout.join(1.0)
        self._stderr.join(1.0)


def spawn(host: str, port: int | None, env: Mapping[str, str], timeout: float) -> tuple[Child, str]:
    """Start ``minillm serve``; return it and its URL once ``/health`` answers.

    ``port`` None serves on the default port, or the next free one if it is taken.

    Raises :class:`GatewayStartError` (with the child's stderr) when it exits
    early or is not ready within ``timeout`` seconds.
    """
    command = [sys.executable, "-m", "minillm", "serve", "--host", host]
    if port is not None:
        command += ["--port", str(port)]
    process = subprocess.Popen(
        [*command, "--watch-stdin"],
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    child = Child(process, _Reader(process.stderr), _Reader(process.stdout, lines))
    deadline = time.monotonic() + timeout
    try:
        url = _wait_for_url(child, lines, deadline, timeout)
        while not is_healthy(url, timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline or not child.running:
                raise _failure(child, f"minillm gateway at {url} did not answer /health")
            time.sleep(0.05)
    except BaseException:
        child.stop(timeout=1.0)
        raise
    return child, url


def _wait_for_url(
    child: Child, lines: queue.Queue[str | None], deadline: float, timeout: float
) -> str:
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise _failure(child, f"minillm gateway not ready within {timeout:g}s") from None
        if line is None:
            child.process.wait(5.0)
            code = child.process.returncode
            raise _failure(child, f"minillm gateway exited with code {code} before it was ready")
        if line.startswith(READY_PREFIX):
            return line.removeprefix(READY_PREFIX).strip()


def _failure(child: Child, message: str) -> GatewayStartError:
    child.stop(timeout=1.0)  # also lets the stderr reader reach end-of-file
    return GatewayStartError(message, child.stderr_tail(), child.process.returncode)
