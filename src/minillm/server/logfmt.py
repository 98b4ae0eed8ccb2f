"""Log output: human-readable lines (default) or one JSON object per line.

``setup_logging(level, "json")`` writes, per record, an object with
``timestamp`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
``request_id`` (when logged while serving a request) and the record's extra
fields (the access log passes ``method``, ``path``, ``status``, ``model``,
``target``, ``key`` and ``duration_ms``), for log shippers.  A worker of
``minillm serve --workers N`` also names its process: ``name[pid]`` in text
lines, ``pid`` in JSON objects.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from minillm.server.request import current_request_id

__all__ = ["JSONFormatter", "RequestIdFilter", "setup_logging"]

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
}


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (or ``None``) from the request being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per record (with the process id when ``pid``)."""

    def __init__(self, *, pid: bool = False) -> None:
        super().__init__()
        self.pid = pid

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if self.pid:
            out["pid"] = record.process
        for name, value in vars(record).items():
            if name not in _STANDARD:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class _PrintedElsewhere(logging.Filter):
    """Drops the records of Hypercorn's loggers that have a handler of their own (the
    ``hypercorn`` command gives ``hypercorn.error`` one): they are printed already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.startswith("hypercorn.") and logging.getLogger(record.name).handlers
        )


def setup_logging(level: str, fmt: str = "text", *, pid: bool = False) -> None:
    """Configure the root logger on stderr, as text lines or JSON objects.

    ``pid`` adds the process id to every record (the workers of one server).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_PrintedElsewhere())
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JSONFormatter(pid=pid))
    else:
        name = "%(name)s[%(process)d]" if pid else "%(name)s"
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {name}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO (with the provider's URL): ours is the access log.
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in ("httpx", "httpcore", "hpack"):
        logging.getLogger(name).setLevel(quiet)
