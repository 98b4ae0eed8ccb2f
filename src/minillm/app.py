"""Hypercorn entry point: ``hypercorn --worker-class trio 'minillm.app:create_app()'``."""

from minillm.server.app import create_app

__all__ = ["create_app"]
