"""The ``minillm`` command line: ``serve`` and friends.

Exit codes: 0 success, 1 runtime failure (e.g. no free port, gateway
unreachable), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from functools import partial

import trio

from minillm import __version__
from minillm.config import Config, ConfigError

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _load_config(args: argparse.Namespace) -> Config:
    overrides = {
        k: v for k in ("host", "port", "log_level") if (v := getattr(args, k, None)) is not None
    }
    return Config.load(config_file=args.config, **overrides)


def _serve(args: argparse.Namespace) -> int:
    from minillm.server.serve import PORT_TRIES, bind_socket, serve  # noqa: PLC0415 (fast --help)

    config = _load_config(args)
    _setup_logging(config.log_level)
    try:
        sock = bind_socket(config.host, config.port)
    except OSError as exc:
        tried = f"{config.port}-{config.port + PORT_TRIES - 1}" if config.port else "0"
        print(
            f"minillm: cannot listen on {config.host} port {tried}: {exc.strerror}", file=sys.stderr
        )
        return EXIT_FAILURE

    def announce(url: str) -> None:
        print(f"minillm listening on {url}", flush=True)

    trio.run(partial(serve, config, sock=sock, on_ready=announce))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minillm",
        description="A small, fast LLM gateway: one local endpoint for every provider.",
    )
    parser.add_argument("--version", action="version", version=f"minillm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway until SIGTERM/SIGINT")
    serve.add_argument("--host", help="address to bind (env MINI_LLM_HOST, default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port (env MINI_LLM_PORT, default 3333; 0 picks a free port)"
    )
    serve.add_argument("--config", metavar="FILE", help="TOML config file (env MINI_LLM_CONFIG)")
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    serve.set_defaults(run=_serve)
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
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
