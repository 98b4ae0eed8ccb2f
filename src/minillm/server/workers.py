"""``minillm serve --workers N``: N Trio worker processes on one listening socket.

The supervisor binds the socket once and starts each worker with the spawn
method, handing it the socket and the frozen config.  Each worker runs
:func:`~minillm.server.serve.serve` (its own providers, key health and
breakers) and accepts from the shared socket.

- A worker that dies is logged and started again, after a pause that grows
  while it keeps dying young.  One that dies before it is first ready stops
  the supervisor (:class:`WorkerStartError`): a crash at start-up repeats.
- SIGTERM or SIGINT: the supervisor closes its copy of the socket and sends
  SIGTERM to every worker, which drains within ``shutdown_grace`` as a single
  server does; workers still running 10 s later are killed.  A second signal
  is passed on: the workers stop at once.  Workers run in their own process
  group, so a Ctrl-C at a terminal reaches the supervisor only.
- Each worker holds one end of a socket pair with the supervisor: it reports
  ready on it, and drains when it reads end-of-file (the supervisor died,
  even of SIGKILL), so a worker is never orphaned.
- ``/metrics`` adds up all workers: the supervisor points
  ``PROMETHEUS_MULTIPROC_DIR`` at a new temporary directory before the first
  worker starts (prometheus-client's multiprocess mode), marks each dead
  worker there, and removes the directory at exit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

import trio
from prometheus_client import multiprocess

from minillm.core.config import Config
from minillm.server.dedicated import dedicate
from minillm.server.logfmt import setup_logging
from minillm.server.serve import serve, url_of

__all__ = ["WorkerStartError", "supervise"]

log = logging.getLogger("minillm.server")

KILL_AFTER = 10.0  # seconds past the grace before workers still running are killed
_MAX_PAUSE = 10.0  # the longest wait before restarting a worker that keeps dying
_YOUNG = 10.0  # seconds: a worker that dies younger waits before it is restarted
_READY = b"ready"
_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class WorkerStartError(RuntimeError):
    """A worker exited before it was ready to serve."""


async def supervise(
    config: Config, sock: socket.socket, *, shutdown: trio.Event, on_ready: Callable[[str], None]
) -> None:
    """Run ``config.workers`` workers on ``sock`` until ``shutdown`` (or SIGTERM/SIGINT).

    ``on_ready`` receives the URL once every worker accepts connections.
    Raises :class:`WorkerStartError` when a worker exits before it is ready.
    """
    url = url_of(sock)
    with _metrics_dir() as metrics_dir:
        pool = _Pool(config, sock, metrics_dir)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_on_signals, shutdown, pool)
            nursery.start_soon(_stop_when_set, shutdown, pool, config.shutdown_grace + KILL_AFTER)
            async with trio.open_nursery() as workers:
                async with trio.open_nursery() as starting:  # the workers start together
                    for index in range(1, config.workers + 1):
                        starting.start_soon(workers.start, pool.keep, index)
                if pool.failed is not None:
                    shutdown.set()
                elif not shutdown.is_set():
                    log.info("%d workers ready", config.workers)
                    on_ready(url)
            nursery.cancel_scope.cancel()
        log.info("all workers stopped")
    if pool.failed is not None:
        raise WorkerStartError(pool.failed)


class _Pool:
    """The worker processes, one slot each, and their restarts."""

    def __init__(self, config: Config, sock: socket.socket, metrics_dir: str) -> None:
        self.config = config
        self.sock = sock
        self.metrics_dir = metrics_dir
        self.stopping = trio.Event()
        self.failed: str | None = None
        self.live: dict[int, multiprocessing.process.BaseProcess] = {}
        self._context = multiprocessing.get_context("spawn")

    async def keep(self, index: int, *, task_status: trio.TaskStatus[None]) -> None:
        """Run worker ``index``, again each time it dies, until the pool stops.

        Started once the first worker process is ready (or could not start).
        """
        pause, first = 0.0, True
        while not self.stopping.is_set():
            ours, theirs = self._context.Pipe()
            process = self._context.Process(
                target=_worker_main,
                args=(self.config, self.sock, theirs),
                name=f"minillm-worker-{index}",
            )
            process.start()
            theirs.close()
            self.live[index] = process
            began = trio.current_time()
            log.info("worker %d started (pid %s)", index, process.pid)
            try:
                ready = await _reported_ready(ours)
                if first:
                    first = False
                    if not ready and not self.stopping.is_set():
                        process.join()  # it closed its end: it is exiting
                        code = process.exitcode
                        self.failed = f"worker {index} exited with code {code} before it was ready"
                    task_status.started()
                if ready:
                    await trio.lowlevel.wait_readable(process.sentinel)
            finally:
                ours.close()  # a worker still running sees end-of-file and drains
                self._reap(index, process)
            if self.failed is not None or self.stopping.is_set():
                return
            log.warning(
                "worker %d (pid %s) exited with code %s; restarting",
                index,
                process.pid,
                process.exitcode,
            )
            young = trio.current_time() - began < _YOUNG
            pause = min(max(pause * 2, 0.5), _MAX_PAUSE) if young else 0.0
            with trio.move_on_after(pause):
                await self.stopping.wait()

    def _reap(self, index: int, process: multiprocessing.process.BaseProcess) -> None:
        if process.is_alive():  # only when the supervisor itself is cancelled
            process.kill()
        process.join()
        del self.live[index]
        multiprocess.mark_process_dead(process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        """Stop restarting; no new connections; every worker drains."""
        self.stopping.set()
        self.sock.close()
        self.signal_all(signal.SIGTERM)

    def signal_all(self, signum: signal.Signals) -> None:
        for process in self.live.values():
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)


async def _reported_ready(conn: Connection) -> bool:
    """True once the worker reports ready; False when it exits first."""
    await trio.lowlevel.wait_readable(conn.fileno())
    try:
        return conn.recv_bytes() == _READY
    except EOFError:
        return False


async def _on_signals(shutdown: trio.Event, pool: _Pool) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if shutdown.is_set():
                log.warning("second %s: the workers stop now", name)
                pool.signal_all(signal.SIGTERM)
            else:
                log.info("%s: draining %d workers", name, len(pool.live))
                shutdown.set()


async def _stop_when_set(shutdown: trio.Event, pool: _Pool, patience: float) -> None:
    await shutdown.wait()
    pool.stop()
    await trio.sleep(patience)
    log.error("workers still running %ss after shutdown began: killing them", patience)
    pool.signal_all(signal.SIGKILL)


@contextmanager
def _metrics_dir() -> Iterator[str]:
    """A new multiprocess metrics directory in the environment the workers inherit."""
    path = tempfile.mkdtemp(prefix="minillm-metrics-")
    previous = os.environ.get(_METRICS_ENV)
    os.environ[_METRICS_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            del os.environ[_METRICS_ENV]
        else:
            os.environ[_METRICS_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


# -- in the worker process ------------------------------------------------------------------


def _worker_main(config: Config, sock: socket.socket, conn: Connection) -> None:
    os.setpgrp()  # a Ctrl-C at the terminal is for the supervisor, which passes it on
    setup_logging(config.log_level, config.log_format, pid=True)
    dedicate()
    trio.run(_work, config, sock, conn)


async def _work(config: Config, sock: socket.socket, conn: Connection) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drain_when_orphaned, conn, shutdown)
        await serve(
            config,
            sock=sock,
            shutdown=shutdown,
            on_ready=lambda _url: conn.send_bytes(_READY),
            on_stuck=_exit_now,
        )
        nursery.cancel_scope.cancel()


async def _drain_when_orphaned(conn: Connection, shutdown: trio.Event) -> None:
    """The supervisor never writes: the socket pair turns readable at its end-of-file."""
    await trio.lowlevel.wait_readable(conn.fileno())
    if not shutdown.is_set():
        log.warning("the supervisor is gone: draining in-flight requests")
        shutdown.set()


def _exit_now() -> None:
    """Last resort when clients that never read hold the shutdown up."""
    logging.shutdown()
    os._exit(0)
