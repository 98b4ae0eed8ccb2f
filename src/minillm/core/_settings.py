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
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SCALARS",
    "ConfigError",
    "ConfigFile",
    "check_keys",
    "flag_name",
    "is_postgres_url",
    "parse_port",
    "parse_scalar",
    "parse_workers",
]


class ConfigError(ValueError):
    """Invalid configuration; the message starts with where the value came from."""


# (environment variable, TOML key and Config field, parser)
SCALARS: tuple[tuple[str, str, str], ...] = (
    ("MINI_LLM_HOST", "host", "str"),
    ("MINI_LLM_PORT", "port", "port"),
    ("MINI_LLM_MAX_BODY_BYTES", "max_body_bytes", "posint"),
    ("MINI_LLM_REQUEST_TIMEOUT", "request_timeout", "seconds"),
    ("MINI_LLM_STREAM_IDLE_TIMEOUT", "stream_idle_timeout", "seconds"),
    ("MINI_LLM_CLIENT_TIMEOUT", "client_timeout", "seconds"),
    ("MINI_LLM_SHUTDOWN_GRACE", "shutdown_grace", "seconds"),
    ("MINI_LLM_DEFAULT_MAX_TOKENS", "default_max_tokens", "posint"),
    ("MINI_LLM_MAX_CONNECTIONS", "max_connections", "posint"),
    ("MINI_LLM_MAX_KEEPALIVE", "max_keepalive", "posint"),
    ("MINI_LLM_MOCK_DELAY", "mock_chunk_delay", "seconds0"),
    ("MINI_LLM_LOG_LEVEL", "log_level", "level"),
    ("MINI_LLM_RETRIES", "retries", "int0"),
    ("MINI_LLM_KEY_COOLDOWN_S", "key_cooldown", "seconds"),
    ("MINI_LLM_KEY_DISABLE_S", "key_disable_s", "seconds"),
    ("MINI_LLM_BREAKER_FAILURES", "breaker_failures", "posint"),
    ("MINI_LLM_BREAKER_COOLDOWN_S", "breaker_cooldown_s", "seconds"),
    ("MINI_LLM_MAX_IN_FLIGHT", "max_in_flight", "posint"),
    ("MINI_LLM_QUEUE_TIMEOUT", "queue_timeout", "seconds0"),
    ("MINI_LLM_ALLOW_UNAUTHENTICATED", "allow_unauthenticated", "bool"),
    ("MINI_LLM_DISCOVER_MODELS", "discover_models", "bool"),
    ("MINI_LLM_USAGE_DB", "usage_db", "usage_db"),
    ("MINI_LLM_LOG_FORMAT", "log_format", "log_format"),
    ("MINI_LLM_WORKERS", "workers", "workers"),
    ("MINI_LLM_REDIS_URL", "redis_url", "redis_url"),
    ("MINI_LLM_REDIS_PREFIX", "redis_prefix", "str"),
    ("MINI_LLM_REDIS_TIMEOUT", "redis_timeout", "seconds"),
)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def flag_name(key: str) -> str:
    """The command-line flag of a setting: ``port`` -> ``--port``."""
    return "--" + key.replace("_", "-")


def parse_scalar(kind: str, name: str, raw: object) -> object:
    """``raw`` parsed as a ``kind`` setting; ConfigError naming ``name`` if invalid."""
    if kind == "str":
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{name}: expected a non-empty string")
        return raw
    if kind == "bool":
        if str(raw).lower() not in {"1", "true", "yes", "0", "false", "no"}:
            raise ConfigError(f"{name}: expected true or false, got {raw!r}")
        return str(raw).lower() in {"1", "true", "yes"}
    if kind == "usage_db":  # a path, a postgresql:// URL, or "off"
        target = str(raw)
        if is_postgres_url(target) and not importlib.util.find_spec("psycopg"):
            raise ConfigError(f"{name}: PostgreSQL needs psycopg: pip install 'minillm[postgres]'")
        return None if target.lower() == "off" else target
    if kind == "redis_url":
        if not isinstance(raw, str) or not raw.startswith(REDIS_SCHEMES):
            raise ConfigError(f"{name}: expected a redis://, rediss:// or unix:// URL")
        if not importlib.util.find_spec("coredis"):
            raise ConfigError(f"{name}: Redis needs coredis: pip install 'minillm[redis]'")
        return raw
    if kind == "workers":
        return parse_workers(name, raw)
    if kind == "log_format":
        if raw not in ("text", "json"):
            raise ConfigError(f"{name}: expected text or json, got {raw!r}")
        return raw
    if kind == "level":
        level = str(raw).lower()
        if level not in {"debug", "info", "warning", "error", "critical"}:
            raise ConfigError(f"{name}: expected debug, info, warning, error or critical")
        return level
    try:
        if isinstance(raw, bool):
            raise TypeError
        number = float(raw) if kind.startswith("seconds") else int(str(raw))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if kind == "port" and not 0 <= int(number) <= 65535:
        raise ConfigError(f"{name}: expected a port number 0-65535, got {raw!r}")
    if kind == "int0" and number < 0:
        raise ConfigError(f"{name}: expected a whole number >= 0, got {raw!r}")
    if kind in {"posint", "seconds"} and not (number > 0 and math.isfinite(number)):
        raise ConfigError(f"{name}: expected a positive number, got {raw!r}")
    if kind == "seconds0" and not (number >= 0 and math.isfinite(number)):
        raise ConfigError(f"{name}: expected a number >= 0, got {raw!r}")
    return number


def parse_workers(name: str, raw: object) -> int:
    """A worker count: a whole number >= 1, or ``auto`` (the CPUs this process may use)."""
    text = str(raw).strip().lower()
    if text == "auto":
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return len(usable) if usable else os.cpu_count() or 1
    if isinstance(raw, bool) or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name}: expected a number of workers >= 1 or 'auto', got {raw!r}")
    return int(text)


def parse_port(name: str, raw: object) -> int:
    """``raw`` as a port number 0-65535; ConfigError naming ``name`` if invalid."""
    port = parse_scalar("port", name, raw)
    assert isinstance(port, int)
    return port


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
