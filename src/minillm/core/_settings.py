"""Where configuration values come from, and the parsers every source shares.

A value comes from a command-line flag (``--port``), an environment variable
(``MINI_LLM_PORT``) or the TOML file (``minillm.toml port``); each is parsed by
the same function and an invalid one is a :class:`ConfigError` naming exactly
that source.  The file is strict: an unknown key at any level is an error that
names the key, the file and the table, and suggests the closest valid key.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minillm.core.redis_url import parse_redis_url

__all__ = [
    "SCALARS",
    "ConfigError",
    "ConfigFile",
    "Parser",
    "check_keys",
    "count",
    "count0",
    "flag",
    "flag_name",
    "is_postgres_url",
    "port",
    "seconds",
    "seconds0",
    "workers",
]


class ConfigError(ValueError):
    """Invalid configuration; the message starts with where the value came from."""


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def flag_name(key: str) -> str:
    """The command-line flag of a setting: ``port`` -> ``--port``."""
    return "--" + key.replace("_", "-")


Parser = Callable[[str, object], object]
"""``(name of the source, raw value)`` -> the value; ConfigError naming the source if invalid."""


def text(name: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{name}: expected a non-empty string")
    return raw


def flag(name: str, raw: object) -> bool:
    if str(raw).lower() not in {"1", "true", "yes", "0", "false", "no"}:
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    return str(raw).lower() in {"1", "true", "yes"}


def usage_db(name: str, raw: object) -> str | None:
    """A path, a postgresql:// URL, or ``off`` (None)."""
    target = str(raw)
    if is_postgres_url(target) and not importlib.util.find_spec("psycopg"):
        raise ConfigError(f"{name}: PostgreSQL needs psycopg: pip install 'minillm[postgres]'")
    return None if target.lower() == "off" else target


def redis_url(name: str, raw: object) -> str:
    try:
        parse_redis_url(raw if isinstance(raw, str) else "")
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if not importlib.util.find_spec("coredis"):
        raise ConfigError(f"{name}: Redis needs coredis: pip install 'minillm[redis]'")
    return str(raw)


def log_format(name: str, raw: object) -> str:
    if raw not in ("text", "json"):
        raise ConfigError(f"{name}: expected text or json, got {raw!r}")
    return str(raw)


def level(name: str, raw: object) -> str:
    value = str(raw).lower()
    if value not in {"debug", "info", "warning", "error", "critical"}:
        raise ConfigError(f"{name}: expected debug, info, warning, error or critical")
    return value


def workers(name: str, raw: object) -> int:
    """A worker count: a whole number >= 1, or ``auto`` (the CPUs this process may use)."""
    value = str(raw).strip().lower()
    if value == "auto":
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return len(usable) if usable else os.cpu_count() or 1
    if isinstance(raw, bool) or not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name}: expected a number of workers >= 1 or 'auto', got {raw!r}")
    return int(value)


def _int(name: str, raw: object) -> int:
    if not isinstance(raw, bool):
        try:
            return int(str(raw))
        except ValueError:
            pass
    raise ConfigError(f"{name}: expected a number, got {raw!r}")


def _float(name: str, raw: object) -> float:
    if isinstance(raw, int | float | str) and not isinstance(raw, bool):
        try:
            return float(raw)
        except ValueError:
            pass
    raise ConfigError(f"{name}: expected a number, got {raw!r}")


def port(name: str, raw: object) -> int:
    """A port number 0-65535."""
    number = _int(name, raw)
    if not 0 <= number <= 65535:
        raise ConfigError(f"{name}: expected a port number 0-65535, got {raw!r}")
    return number


def count(name: str, raw: object) -> int:
    """A whole number >= 1."""
    number = _int(name, raw)
    if number <= 0:
        raise ConfigError(f"{name}: expected a positive number, got {raw!r}")
    return number


def count0(name: str, raw: object) -> int:
    """A whole number >= 0."""
    number = _int(name, raw)
    if number < 0:
        raise ConfigError(f"{name}: expected a whole number >= 0, got {raw!r}")
    return number


def seconds(name: str, raw: object) -> float:
    """A duration > 0."""
    number = _float(name, raw)
    if not (number > 0 and math.isfinite(number)):
        raise ConfigError(f"{name}: expected a positive number, got {raw!r}")
    return number


def seconds0(name: str, raw: object) -> float:
    """A duration >= 0."""
    number = _float(name, raw)
    if not (number >= 0 and math.isfinite(number)):
        raise ConfigError(f"{name}: expected a number >= 0, got {raw!r}")
    return number


# (environment variable, TOML key and Config field, parser).  Durations are in seconds and
# their fields carry no unit suffix; the environment names keep theirs.
SCALARS: tuple[tuple[str, str, Parser], ...] = (
    ("MINI_LLM_HOST", "host", text),
    ("MINI_LLM_PORT", "port", port),
    ("MINI_LLM_MAX_BODY_BYTES", "max_body_bytes", count),
    ("MINI_LLM_REQUEST_TIMEOUT", "request_timeout", seconds),
    ("MINI_LLM_STREAM_IDLE_TIMEOUT", "stream_idle_timeout", seconds),
    ("MINI_LLM_CLIENT_TIMEOUT", "client_timeout", seconds),
    ("MINI_LLM_SHUTDOWN_GRACE", "shutdown_grace", seconds),
    ("MINI_LLM_DEFAULT_MAX_TOKENS", "default_max_tokens", count),
    ("MINI_LLM_MAX_CONNECTIONS", "max_connections", count),
    ("MINI_LLM_MAX_KEEPALIVE", "max_keepalive", count),
    ("MINI_LLM_MOCK_DELAY", "mock_chunk_delay", seconds0),
    ("MINI_LLM_LOG_LEVEL", "log_level", level),
    ("MINI_LLM_RETRIES", "retries", count0),
    ("MINI_LLM_KEY_COOLDOWN_S", "key_cooldown", seconds),
    ("MINI_LLM_KEY_DISABLE_S", "key_disable", seconds),
    ("MINI_LLM_BREAKER_FAILURES", "breaker_failures", count),
    ("MINI_LLM_BREAKER_COOLDOWN_S", "breaker_cooldown", seconds),
    ("MINI_LLM_MAX_IN_FLIGHT", "max_in_flight", count),
    ("MINI_LLM_QUEUE_TIMEOUT", "queue_timeout", seconds0),
    ("MINI_LLM_ALLOW_UNAUTHENTICATED", "allow_unauthenticated", flag),
    ("MINI_LLM_DISCOVER_MODELS", "discover_models", flag),
    ("MINI_LLM_USAGE_DB", "usage_db", usage_db),
    ("MINI_LLM_LOG_FORMAT", "log_format", log_format),
    ("MINI_LLM_WORKERS", "workers", workers),
    ("MINI_LLM_REDIS_URL", "redis_url", redis_url),
    ("MINI_LLM_REDIS_PREFIX", "redis_prefix", text),
    ("MINI_LLM_REDIS_TIMEOUT", "redis_timeout", seconds),
)


def check_keys(table: Mapping[str, object], allowed: Collection[str], where: str) -> None:
    """ConfigError for the first key of ``table`` not in ``allowed``, with the closest one."""
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """The TOML file's content and its name as given, for error messages."""

    name: str = ""
    content: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | os.PathLike[str], given_by: str) -> ConfigFile:
        """Read and parse ``path``; ``given_by`` (``--config``) prefixes errors."""
        name = os.fspath(path)
        try:
            with Path(path).open("rb") as f:
                return cls(name, tomllib.load(f))
        except OSError as exc:
            raise ConfigError(f"{given_by}: cannot read {name}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{given_by}: {name} is not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{given_by}: {name} is not UTF-8 text") from None

    def where(self, table: str = "", key: str = "") -> str:
        """``minillm.toml [providers.local] base_url``: where a value came from."""
        return " ".join(p for p in (self.name, f"[{table}]" if table else "", key) if p)

    def table(self, name: str, allowed: Collection[str] | None = None) -> Mapping[str, Any]:
        """The sub-table ``name`` (empty if absent), its keys checked against ``allowed``."""
        found = self.content.get(name, {})
        if not isinstance(found, Mapping):
            raise ConfigError(f"{self.where(key=name)}: expected a table")
        if allowed is not None:
            check_keys(found, allowed, self.where(name))
        return found

    def tables(self, name: str, allowed: Collection[str]) -> dict[str, Mapping[str, Any]]:
        """The tables ``[name.<x>]`` by ``x``, each one's keys checked against ``allowed``."""
        found: dict[str, Mapping[str, Any]] = {}
        for sub, spec in self.table(name).items():
            if not isinstance(spec, Mapping):
                raise ConfigError(f"{self.where(name, sub)}: expected a table [{name}.{sub}]")
            check_keys(spec, allowed, self.where(f"{name}.{sub}"))
            found[sub] = spec
        return found
