"""Serve the app with Hypercorn's Trio worker: bind, signals, graceful shutdown.

On SIGTERM or SIGINT the server stops accepting, lets in-flight requests
finish for ``Config.shutdown_grace`` seconds, then cancels what is left
(upstream streams are closed by their relays) and returns.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.logging import Logger as HypercornLogger
from hypercorn.trio import serve as hypercorn_serve

from minillm.core.config import Config
from minillm.core.errors import Overloaded
from minillm.server import fastsend
from minillm.server.app import create_app, streams_of
from minillm.server.relay import StreamRegistry

__all__ = ["ACCEPTORS", "PORT_TRIES", "bind_socket", "hypercorn_config", "serve"]

log = logging.getLogger("minillm.server")

PORT_TRIES = 10
ACCEPTORS = 8


def bind_socket(host: str, port: int, tries: int = PORT_TRIES) -> socket.socket:
    """A listening socket on ``port``, or on one of the next ``tries - 1`` ports.

    Port 0 asks the OS for a free port.  Raises :class:`OSError` when every
    port tried is taken.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last_error: OSError | None = None
    for candidate in [0] if port == 0 else range(port, min(port + tries, 65536)):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            last_error = exc
            continue
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock
    assert last_error is not None
    raise last_error


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _HypercornLog(HypercornLogger):
    """Hypercorn's log, saying "Running on" once: its listeners share one socket."""

    def __init__(self, config: HypercornConfig) -> None:
        super().__init__(config)
        self._announced = False

    async def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        if message.startswith("Running on"):
            if self._announced:
                return
            self._announced = True
        await super().info(message, *args, **kwargs)


def hypercorn_config(config: Config, sock: socket.socket) -> HypercornConfig:
    hc = HypercornConfig()
    # Several listeners on duplicates of the one socket (Hypercorn owns and closes
    # them): each accept loop takes one connection per scheduler pass, so a wave of
    # a thousand new clients would otherwise wait seconds in the accept queue.  Not
    # with several workers on the socket: the first one awake would take a whole wave.
    acceptors = ACCEPTORS if config.workers == 1 else 1
    hc.bind = [f"fd://{os.dup(sock.fileno())}" for _ in range(acceptors)]
    hc.logger_class = _HypercornLog
    hc.graceful_timeout = config.shutdown_grace
    hc.keep_alive_timeout = 75
    hc.backlog = 2048
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc


async def serve(
    config: Config,
    *,
    sock: socket.socket | None = None,
    shutdown: trio.Event | None = None,
    handle_signals: bool = True,
    on_ready: Callable[[str], None] | None = None,
    on_stuck: Callable[[], None] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` is set (or SIGTERM/SIGINT), then drain and return.

    ``sock`` (by default bound from the config) is taken over and closed.

    In-flight requests get ``config.shutdown_grace`` seconds to finish, then
    are cancelled.  A second signal cancels at once.  ``on_ready`` and
    ``task_status.started`` receive the URL actually bound, once the gateway
    accepts connections.  Cancelling the caller's scope stops it abruptly.

    Hypercorn shields its socket writes, so a client that never reads can
    hold a connection past cancellation; ``on_stuck`` (the CLI exits the
    process) is called if shutdown has not finished 5 s after the grace.
    """
    sock = sock or bind_socket(config.host, config.port)
    url = url_of(sock)
    shutdown = trio.Event() if shutdown is None else shutdown
    fastsend.install()
    app = create_app(config)
    hc = hypercorn_config(config, sock)
    # Hypercorn listens on its own duplicate: close ours, so that when it stops
    # listening at shutdown the kernel refuses new connections at once.
    sock.close()
    async with trio.open_nursery() as nursery:

        async def run_server(*, task_status: trio.TaskStatus[None]) -> None:
            await hypercorn_serve(
                app,
                hc,
                shutdown_trigger=shutdown.wait,
                task_status=task_status,  # type: ignore[arg-type]
            )
            nursery.cancel_scope.cancel()

        if handle_signals:
            nursery.start_soon(_on_signals, shutdown, nursery.cancel_scope)
        if on_stuck is not None:
            nursery.start_soon(_watchdog, shutdown, config.shutdown_grace + 5, on_stuck)
        nursery.start_soon(_end_streams_in_time, shutdown, streams_of(app), config.shutdown_grace)
        await nursery.start(run_server)
        if on_ready is not None:
            on_ready(url)
        task_status.started(url)


async def _on_signals(shutdown: trio.Event, scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if shutdown.is_set():
                log.warning("second %s: stopping now", signal.Signals(signum).name)
                scope.cancel()
                return
            log.info("%s: draining in-flight requests", signal.Signals(signum).name)
            shutdown.set()


async def _watchdog(shutdown: trio.Event, patience: float, on_stuck: Callable[[], None]) -> None:
    await shutdown.wait()
    await trio.sleep(patience)
    log.error("shutdown did not finish %ss after it began (stalled clients)", patience)
    on_stuck()


async def _end_streams_in_time(shutdown: trio.Event, streams: StreamRegistry, grace: float) -> None:
    """Just before the grace runs out, end the streams still running with an error
    event and answer the requests still waiting for their upstream with a 503, so
    their clients see a clean end rather than a cut connection."""
    await shutdown.wait()
    await trio.sleep(max(grace - 1.0, grace * 0.8))
    if streams:
        log.info("ending %d requests still running at the end of the grace", len(streams))
        streams.end_all(Overloaded("The gateway is shutting down; retry the request"))
