"""The ``minillm`` command."""

from minillm.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
