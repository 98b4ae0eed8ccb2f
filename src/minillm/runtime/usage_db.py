"""Where usage records are kept: the ``requests`` table, in SQLite or in PostgreSQL.

:func:`open_store` takes ``MINI_LLM_USAGE_DB``: a file path (SQLite in WAL
mode with a busy timeout, so several processes on one machine write one file
and readers never block them) or a ``postgresql://`` URL (psycopg 3, for
several machines).  Either creates the table on first use.  Stores block:
callers run them in a worker thread.  Failures of either database surface as
:class:`UsageStoreError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol
from urllib.parse import urlsplit

import orjson

from minillm.core._settings import is_postgres_url

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "COLUMNS",
    "SummaryRow",
    "UsageRecord",
    "UsageStore",
    "UsageStoreError",
    "open_store",
]

BUSY_TIMEOUT = 10.0  # seconds a writer waits for another process's transaction


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One finished request (column order of the ``requests`` table)."""

    ts: float  # unix seconds at the start of the request
    request_id: str
    key: str | None
    client_format: str
    endpoint: str
    provider: str | None
    model_asked: str | None
    model_served: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    status: int
    latency_ms: float
    ttfb_ms: float | None
    cost: float | None


COLUMNS = tuple(f.name for f in fields(UsageRecord))
# Type names both databases understand (SQLite maps them to its own affinities).
_SQL_TYPES = {
    "float": "DOUBLE PRECISION NOT NULL",
    "float | None": "DOUBLE PRECISION",
    "int": "INTEGER NOT NULL",
    "int | None": "BIGINT",
    "str": "TEXT NOT NULL",
    "str | None": "TEXT",
}
_TABLE = (
    "CREATE TABLE IF NOT EXISTS requests ("
    + ", ".join(f"{f.name} {_SQL_TYPES[str(f.type)]}" for f in fields(UsageRecord))
    + ")"
)
_INDEX = "CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts)"
_SCHEMA_LOCK = 0x6D696E696C6C6D  # pg_advisory_xact_lock id: workers starting together

# (group, status, input_tokens, output_tokens, cost, latency_ms)
SummaryRow = tuple[str, int, int | None, int | None, float | None, float]


class UsageStoreError(Exception):
    """The usage database could not be opened, written or read."""


class UsageStore(Protocol):
    """The ``requests`` table of one database."""

    where: str  # for logs and messages; never a password

    def write(self, batch: Sequence[UsageRecord]) -> None: ...

    def select(self, group_sql: str, since_ts: float) -> list[SummaryRow]: ...

    def close(self) -> None: ...


def open_store(target: str | Path) -> UsageStore:
    """A store for a path (SQLite) or a ``postgresql://`` URL, its table created."""
    if isinstance(target, str) and is_postgres_url(target):
        return _PostgresStore(target)
    return _SQLiteStore(Path(target))


class _Store:
    """What both backends share: the summary query and error mapping."""

    _param: ClassVar[str]
    _errors: tuple[type[Exception], ...]
    where: str
    _db: sqlite3.Connection | psycopg.Connection[tuple[object, ...]]

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise UsageStoreError(f"{self.where}: {exc}") from exc

    def select(self, group_sql: str, since_ts: float) -> list[SummaryRow]:
        query = (
            f"SELECT {group_sql}, status, input_tokens, output_tokens, cost, latency_ms"
            f" FROM requests WHERE ts >= {self._param}"
        )
        with self._mapped():
            return list(self._db.execute(query, (since_ts,)).fetchall())

    def close(self) -> None:
        with self._mapped():
            self._db.close()


class _SQLiteStore(_Store):
    _param = "?"
    _INSERT = (
        f"INSERT INTO requests ({', '.join(COLUMNS)}) SELECT "
        + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(COLUMNS)))
        + " FROM json_each(?)"
    )

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        self._errors = (sqlite3.Error, OSError)
        with self._mapped():
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT)
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")  # readers and writers do not block each other
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(f"{_TABLE};\n{_INDEX};")
        self._db: sqlite3.Connection = db

    def write(self, batch: Sequence[UsageRecord]) -> None:
        # One statement over a JSON array: SQLite inserts the whole batch while this
        # thread has released the GIL, instead of taking it back for every row.
        rows = orjson.dumps([[getattr(r, name) for name in COLUMNS] for r in batch])
        with self._mapped(), self._db:
            self._db.execute(self._INSERT, (rows,))


class _PostgresStore(_Store):
    _param = "%s"

    def __init__(self, url: str) -> None:
        try:
            import psycopg  # noqa: PLC0415 (optional: pip install 'minillm[postgres]')
        except ImportError:
            raise UsageStoreError(
                "PostgreSQL usage needs psycopg: pip install 'minillm[postgres]'"
            ) from None
        self._errors = (psycopg.Error,)
        self._open = partial(psycopg.connect, url, autocommit=True, connect_timeout=10)
        parts = urlsplit(url)
        self.where = f"PostgreSQL database {parts.path.strip('/') or '(default)'}"
        self.where += f" on {parts.hostname}" if parts.hostname else ""
        with self._mapped():
            self._db: psycopg.Connection[tuple[object, ...]] = self._open()
            with self._db.transaction():  # several workers may start at once
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                self._db.execute(_TABLE)
                self._db.execute(_INDEX)

    def write(self, batch: Sequence[UsageRecord]) -> None:
        copy_sql = f"COPY requests ({', '.join(COLUMNS)}) FROM STDIN"
        with self._mapped():
            if self._db.closed:  # lost with the server (a restart): connect again
                self._db = self._open()
            with self._db.transaction(), self._db.cursor() as cur, cur.copy(copy_sql) as copy:
                for record in batch:
                    copy.write_row([getattr(record, name) for name in COLUMNS])
