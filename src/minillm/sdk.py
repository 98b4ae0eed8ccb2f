"""Run the gateway from Python: inside a Trio nursery, or as a background process.

Trio apps run it in their own event loop::

    async with minillm.open_gateway() as gw:
        client = gw.async_openai_client()      # or any HTTP client on gw.url
        ...                                    # leaving the block drains and stops it

Any other app (sync code, asyncio, notebooks) starts a child process, so the
gateway never competes with the app for the GIL::

    gw = minillm.start()                       # MINI_LLM_PORT or 3333
    client = gw.openai_client()
    ...
    gw.stop()                                  # or `with minillm.start() as gw:`

**One gateway per process per port.**  :func:`start` keeps a process-wide
registry keyed by host and requested port: calling it again returns the same
:class:`GatewayProcess` while it runs, and a healthy minillm already answering
on the requested port (started by another process) is reused instead of
spawning a second one.  A gateway this process started is stopped by
:meth:`GatewayProcess.stop`; at interpreter exit it is sent SIGTERM (without
delaying the exit), and if this process dies in any other way (SIGTERM,
SIGKILL) the child notices its stdin pipe closing and exits: it is never
orphaned.  A reused gateway is never stopped by this process.
"""

from __future__ import annotations

import atexit
import importlib
import os
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from minillm._child import Child, GatewayStartError, is_healthy, spawn
from minillm.core import _settings
from minillm.core.config import DEFAULT_PORT, Config

if TYPE_CHECKING:
    import anthropic
    import openai

__all__ = [
    "DEFAULT_PORT",
    "GatewayEndpoints",
    "GatewayProcess",
    "GatewayStartError",
    "RunningGateway",
    "open_gateway",
    "start",
]

_PLACEHOLDER_KEY = "minillm"  # the gateway holds the provider keys; SDKs insist on one
_CLIENTS_HINT = "the official SDK clients are an optional extra: pip install 'minillm[clients]'"


class GatewayEndpoints:
    """The URLs of a running gateway and official SDK clients pointed at it.

    The ``*_client`` helpers pass ``**kwargs`` on to the SDK's constructor;
    they need the optional ``minillm[clients]`` extra.  The gateway holds the
    provider keys; ``api_key`` defaults to ``MINI_LLM_API_KEY`` (a gateway key,
    for a gateway that requires one) or a placeholder.
    """

    __slots__ = ()
    url: str

    @property
    def base_url_openai(self) -> str:
        """Base URL for OpenAI SDKs (``…/v1``)."""
        return f"{self.url}/v1"

    @property
    def base_url_anthropic(self) -> str:
        """Base URL for Anthropic SDKs (which add ``/v1/messages`` themselves)."""
        return f"{self.url}/anthropic"

    def openai_client(self, **kwargs: Any) -> openai.OpenAI:
        client: openai.OpenAI = _sdk("openai").OpenAI(**self._args(self.base_url_openai, kwargs))
        return client

    def async_openai_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        args = self._args(self.base_url_openai, kwargs)
        client: openai.AsyncOpenAI = _sdk("openai").AsyncOpenAI(**args)
        return client

    def anthropic_client(self, **kwargs: Any) -> anthropic.Anthropic:
        args = self._args(self.base_url_anthropic, kwargs)
        client: anthropic.Anthropic = _sdk("anthropic").Anthropic(**args)
        return client

    def async_anthropic_client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        args = self._args(self.base_url_anthropic, kwargs)
        client: anthropic.AsyncAnthropic = _sdk("anthropic").AsyncAnthropic(**args)
        return client

    @staticmethod
    def _args(base_url: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        api_key = os.environ.get("MINI_LLM_API_KEY") or _PLACEHOLDER_KEY
        return {"base_url": base_url, "api_key": api_key, **kwargs}


def _sdk(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"{name} is not installed; {_CLIENTS_HINT}") from exc


@dataclass(frozen=True, slots=True)
class RunningGateway(GatewayEndpoints):
    """A gateway served by :func:`open_gateway` in the caller's Trio run."""

    url: str


@asynccontextmanager
async def open_gateway(
    config: Config | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningGateway]:
    """Serve the gateway in this Trio run on ``host:port`` (0: a free port).

    ``config`` defaults to :meth:`Config.load` (the environment); its own
    ``host`` and ``port`` are not used.  Leaving the block stops accepting
    and lets in-flight requests finish (``config.shutdown_grace``); an
    exception in the block cancels them instead.
    """
    import trio  # noqa: PLC0415 (`import minillm` stays light for sync apps)

    from minillm.server.serve import bind_socket, serve  # noqa: PLC0415

    config = config or Config.load()
    sock = bind_socket(host, port)
    shutdown = trio.Event()
    raised: BaseException | None = None
    try:
        # Yielding inside a nursery is safe in an @asynccontextmanager (not in a generator).
        async with trio.open_nursery() as nursery:
            url: str = await nursery.start(
                partial(serve, config, sock=sock, shutdown=shutdown, handle_signals=False)
            )
            try:
                yield RunningGateway(url)
            except BaseException as exc:
                raised = exc
                raise
            finally:
                shutdown.set()
    except BaseExceptionGroup as group:
        if raised is None or group.exceptions != (raised,):
            raise
        raise raised from raised.__cause__  # the block's own error, not wrapped in a group


class GatewayProcess(GatewayEndpoints):
    """A gateway in a background process, returned by :func:`start`.

    ``owned`` is False when :func:`start` found a minillm already running on
    the port: then :meth:`stop` only forgets it and never stops it.
    """

    def __init__(self, url: str, child: Child | None, key: tuple[str, int]) -> None:
        self.url = url
        self._child = child
        self._key = key

    def __repr__(self) -> str:
        return f"<GatewayProcess {self.url} pid={self.pid} owned={self.owned}>"

    @property
    def owned(self) -> bool:
        """True when this process started the gateway (and will stop it)."""
        return self._child is not None

    @property
    def pid(self) -> int | None:
        """The child's process id (None for a reused gateway)."""
        return self._child.process.pid if self._child else None

    @property
    def running(self) -> bool:
        """The child is alive (a reused gateway: it answers ``/health``)."""
        return self._child.running if self._child else is_healthy(self.url)

    def logs(self) -> str:
        """The last lines of the child's log (stderr); empty for a reused gateway."""
        return self._child.stderr_tail() if self._child else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the gateway if this process started it: SIGTERM, then SIGKILL
        after ``timeout`` seconds.  Every holder of this gateway loses it;
        the next :func:`start` on the port spawns a new one."""
        _REGISTRY.forget(self._key, self)
        if self._child is not None:
            self._child.stop(timeout)

    def _terminate(self) -> None:
        if self._child is not None:
            self._child.terminate()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Registry:
    """The gateways :func:`start` returned in this process, by (host, requested port)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gateways: dict[tuple[str, int], GatewayProcess] = {}
        self._atexit = False

    def start(
        self, host: str, port: int, env: Mapping[str, str], timeout: float, *, movable: bool
    ) -> GatewayProcess:
        key = (host, port)
        with self._lock:
            known = self._gateways.get(key)
            if known is not None and known.running:
                return known
            url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
            if port and is_healthy(url, timeout=1.0):
                gateway = GatewayProcess(url, None, key)
            else:
                child, url = spawn(host, None if movable else port, env, timeout)
                gateway = GatewayProcess(url, child, key)
                if not self._atexit:
                    atexit.register(self.at_exit)
                    self._atexit = True
            self._gateways[key] = gateway
            return gateway

    def forget(self, key: tuple[str, int], gateway: GatewayProcess) -> None:
        with self._lock:
            if self._gateways.get(key) is gateway:
                del self._gateways[key]

    def at_exit(self) -> None:
        """Ask every child this process started to stop, without delaying the exit:
        each drains on its own, and this process's connections close as it exits."""
        with self._lock:
            gateways, self._gateways = list(self._gateways.values()), {}
        for gateway in gateways:
            gateway._terminate()


_REGISTRY = _Registry()


def start(
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> GatewayProcess:
    """Start the gateway in a background process (or reuse one) and wait until
    ``/health`` answers.

    ``port`` defaults to ``MINI_LLM_PORT`` or 3333; if the default 3333 is
    taken by something other than minillm, the gateway takes one of the next
    ports (see ``url``), while a port that was asked for (``port`` or
    ``MINI_LLM_PORT``) and is taken fails the start.  ``env`` is merged over
    ``os.environ`` for the child (its values win), e.g.
    ``{"OPENAI_API_KEY": ...}``; it is ignored when an already running gateway
    is returned.  Raises :class:`GatewayStartError`,
    with the child's stderr, when the gateway exits early or is not ready
    within ``timeout`` seconds; :class:`~minillm.core.config.ConfigError` for a bad
    ``MINI_LLM_PORT``.
    """
    merged = {**os.environ, **(env or {})}
    movable = port is None and not merged.get("MINI_LLM_PORT")
    if port is None:
        port = _settings.port("MINI_LLM_PORT", merged.get("MINI_LLM_PORT") or DEFAULT_PORT)
    return _REGISTRY.start(host, port, merged, timeout, movable=movable)
