"""The ``minillm`` command line: ``serve``, ``health``, ``models``, ``chat``, ``config``, ``demo``.

Exit codes: 0 success, 1 runtime failure (e.g. no free port, gateway
unreachable, an API error), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from minillm._version import __version__
from minillm.cli.commands import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    run_chat,
    run_health,
    run_models,
)
from minillm.cli.config_cmd import run_config
from minillm.cli.demo import run_demo
from minillm.cli.usage_report import add_usage_command
from minillm.core.config import Config, ConfigError
from minillm.sdk import GatewayStartError

if TYPE_CHECKING:
    import trio

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

_EXIT_INTERRUPTED = 130
_KEY_HELP = "gateway key, if the gateway requires one (env MINI_LLM_API_KEY)"
_URL_HELP = "gateway URL (env MINI_LLM_URL, default http://127.0.0.1:$MINI_LLM_PORT or 3333)"


def _load_config(args: argparse.Namespace) -> Config:
    names = ("host", "port", "log_level", "log_format", "allow_unauthenticated", "workers")
    overrides = {k: v for k in names if (v := getattr(args, k, None)) is not None}
    return Config.load(config_file=args.config, **overrides)


def _serve(args: argparse.Namespace) -> int:
    import trio  # noqa: PLC0415 (fast --help and client commands)

    from minillm.server.dedicated import dedicate  # noqa: PLC0415
    from minillm.server.logfmt import setup_logging  # noqa: PLC0415
    from minillm.server.serve import PORT_TRIES, bind_socket, serve  # noqa: PLC0415
    from minillm.server.workers import WorkerStartError, supervise  # noqa: PLC0415

    config = _load_config(args)
    setup_logging(config.log_level, config.log_format)
    tries = 1 if config.port_from else PORT_TRIES  # only the default port may move
    try:
        sock = bind_socket(config.host, config.port, tries)
    except OSError as exc:
        if config.port_from and exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{config.port_from}: port {config.port} is already in use") from None
        tried = f"{config.port}-{config.port + tries - 1}" if tries > 1 else str(config.port)
        print(
            f"minillm: cannot listen on {config.host} port {tried}: {exc.strerror}", file=sys.stderr
        )
        return EXIT_FAILURE
    if config.port and (bound := sock.getsockname()[1]) != config.port:
        print(
            f"minillm: the default port {config.port} is in use: listening on {bound} instead",
            file=sys.stderr,
        )

    def announce(url: str) -> None:
        print(f"minillm listening on {url}", flush=True)

    async def run() -> None:
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            if args.watch_stdin:
                nursery.start_soon(_shutdown_on_stdin_eof, shutdown)
            if config.workers > 1:
                await supervise(config, sock, shutdown=shutdown, on_ready=announce)
            else:
                await serve(
                    config, sock=sock, shutdown=shutdown, on_ready=announce, on_stuck=_exit_now
                )
            nursery.cancel_scope.cancel()

    code = EXIT_OK
    dedicate()
    try:
        trio.run(run)
    except* WorkerStartError as failed:
        print(f"minillm: {failed.exceptions[0]} (its log is above)", file=sys.stderr)
        code = EXIT_FAILURE
    return code


def _exit_now() -> None:
    """Last resort when clients that never read hold the shutdown up."""
    logging.shutdown()
    os._exit(EXIT_OK)


async def _shutdown_on_stdin_eof(shutdown: trio.Event) -> None:
    """Drain and exit when stdin reaches end-of-file: the parent of a gateway
    started by :func:`minillm.start` closed its end, or died."""
    import trio  # noqa: PLC0415

    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
        while await stdin.receive_some():
            pass
    logging.getLogger("minillm.server").info("stdin closed: draining in-flight requests")
    shutdown.set()


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    description = summary[0].upper() + summary[1:] + "."
    return commands.add_parser(name, help=summary, description=description)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minillm",
        description="A small, fast LLM gateway: one local endpoint for every provider.",
        epilog="Run `minillm demo` for a tour (offline when no keys are set), "
        "`minillm COMMAND --help` for details.",
    )
    parser.add_argument("--version", action="version", version=f"minillm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = _command(commands, "serve", "run the gateway until SIGTERM/SIGINT")
    serve.add_argument("--host", help="address to bind (env MINI_LLM_HOST, default 127.0.0.1)")
    serve.add_argument(
        "--port",
        help="port (env MINI_LLM_PORT, default 3333, which moves to the next free port when"
        " taken; 0 picks a free port)",
    )
    serve.add_argument("--config", metavar="FILE", help="TOML config file (env MINI_LLM_CONFIG)")
    serve.add_argument(
        "--workers",
        metavar="N",
        help="worker processes sharing the port, or 'auto' for one per CPU"
        " (env MINI_LLM_WORKERS, default 1)",
    )
    serve.add_argument(
        "--log-level", help="debug, info (default), warning, error (env MINI_LLM_LOG_LEVEL)"
    )
    serve.add_argument(
        "--log-format",
        help="text (default) or json: one JSON object a line (env MINI_LLM_LOG_FORMAT)",
    )
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="serve a non-loopback address without gateway keys (MINI_LLM_AUTH_KEYS)",
    )
    serve.add_argument("--watch-stdin", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    health = _command(commands, "health", "check that a gateway answers /health")
    health.add_argument("url", nargs="?", metavar="URL", help=_URL_HELP)
    health.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    health.add_argument(
        "--providers", action="store_true", help="also show keys, breaker and load per provider"
    )
    health.add_argument("--api-key", help=_KEY_HELP)
    health.set_defaults(run=run_health)

    models = _command(commands, "models", "list a gateway's model aliases and their targets")
    models.add_argument("url", nargs="?", metavar="URL", help=_URL_HELP)
    models.add_argument("--json", action="store_true", help="print the raw JSON answer")
    models.add_argument("--api-key", help=_KEY_HELP)
    models.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    models.set_defaults(run=run_models)

    chat = _command(commands, "chat", "send a prompt and stream the reply to the terminal")
    chat.add_argument("prompt", nargs="?", metavar="PROMPT", help="the prompt; '-' reads stdin")
    chat.add_argument("-m", "--model", default="gpt-4o-mini", help="model or alias (%(default)s)")
    chat.add_argument("--url", help=_URL_HELP)
    chat.add_argument("-s", "--system", help="a system prompt")
    chat.add_argument("--max-tokens", type=int, metavar="N", help="cap the reply length")
    chat.add_argument(
        "--format",
        choices=["openai", "anthropic", "responses"],
        default="openai",
        help="API to call: /v1/chat/completions, /v1/messages or /v1/responses (%(default)s)",
    )
    chat.add_argument("--api-key", help=_KEY_HELP)
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole reply")
    chat.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    chat.add_argument("-v", "--verbose", action="store_true", help="print the target to stderr")
    chat.set_defaults(run=run_chat)

    config = _command(commands, "config", "print the resolved configuration, keys masked")
    config.add_argument("--config", metavar="FILE", help="TOML config file (env MINI_LLM_CONFIG)")
    config.add_argument("--json", action="store_true", help="print it as JSON")
    config.set_defaults(run=run_config)

    demo = _command(commands, "demo", "start a gateway, take a short tour of it, stop it")
    demo.add_argument("--config", metavar="FILE", help="TOML config file (env MINI_LLM_CONFIG)")
    demo.add_argument("--openai-model", default="gpt-4o-mini", help="(%(default)s)")
    demo.add_argument("--anthropic-model", default="claude-haiku-4-5", help="(%(default)s)")
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds per step (default 60)")
    demo.set_defaults(run=run_demo)

    add_usage_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"minillm: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"minillm: {exc}", file=sys.stderr)
        return exc.code
    except GatewayStartError as exc:
        print(f"minillm: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # e.g. `minillm config | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK if args.command == "serve" else _EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
