"""Hypercorn entry point: ``hypercorn --worker-class trio 'minillm.app:create_app()'``.

The factory reads the same environment and TOML file as ``minillm serve`` and
sets up logging the same way (``MINI_LLM_LOG_LEVEL``, ``MINI_LLM_LOG_FORMAT``,
the access log), unless the process already configured its own, and installs
the same direct socket write (:mod:`minillm.server.fastsend`) and garbage
collector settings (:mod:`minillm.server.dedicated`); only the
listening socket and the shutdown are Hypercorn's (``--bind``,
``--graceful-timeout``).
"""

from __future__ import annotations

import logging

from quart_trio import QuartTrio

from minillm.core.config import Config
from minillm.server import fastsend
from minillm.server.app import create_app as _create_app
from minillm.server.dedicated import dedicate
from minillm.server.logfmt import setup_logging

__all__ = ["create_app"]


def create_app(config: Config | None = None) -> QuartTrio:
    """The gateway app, with logging set up as ``minillm serve`` does."""
    config = config or Config.load()
    if not logging.getLogger().handlers:  # an embedding app's own logging set-up wins
        setup_logging(config.log_level, config.log_format)
    fastsend.install()
    app = _create_app(config)
    dedicate()  # Hypercorn runs only this app
    return app
