"""``minillm config``: the resolved configuration, with every secret masked."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import orjson

from minillm.cli.commands import EXIT_OK
from minillm.core.config import Config, ProviderConfig

__all__ = ["describe_config", "mask_secret", "run_config"]

_SECRET_NAME = re.compile(r"key|token|secret|password|auth", re.IGNORECASE)


def mask_secret(secret: str) -> str:
    """``sk-...abcd``: at most the first 3 and last 4 characters; ``***`` if short."""
    return f"{secret[:3]}...{secret[-4:]}" if len(secret) >= 12 else "***"


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    return urlunsplit(parts._replace(netloc=netloc, query="***" if parts.query else ""))


def _masked(name: str, value: object) -> object:
    """A JSON-ready config value with every secret masked."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        shown = [f.name for f in dataclasses.fields(value) if f.repr and not f.name.startswith("_")]
        out = {k: _masked(k, getattr(value, k)) for k in shown}
        if isinstance(value, ProviderConfig):
            del out["name"]
            out["base_url"] = _mask_url(value.base_url)
            out["keys"] = [mask_secret(k) for k in value.keys]
            out["headers"] = {k: mask_secret(v) for k, v in value.headers.items()}
        return out
    if isinstance(value, Mapping):
        return {str(k): _masked(str(k), v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_masked(name, v) for v in value]
    if isinstance(value, str) and _SECRET_NAME.search(name):
        return mask_secret(value)
    if name in ("usage_db", "redis_url") and isinstance(value, str) and "://" in value:
        return _mask_url(value)  # postgresql://user:password@host/db, redis://:password@host
    return value if isinstance(value, int | float | bool | str | None) else str(value)


def describe_config(config: Config) -> dict[str, object]:
    """The resolved configuration, JSON-ready, secrets masked."""
    described = _masked("config", config)
    assert isinstance(described, dict)
    return {"offline": config.offline, **described}


def run_config(args: argparse.Namespace) -> int:
    config = Config.load(config_file=args.config)
    described = describe_config(config)
    if args.json:
        print(orjson.dumps(described, option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    print(
        "mode: "
        + (
            "offline (no provider keys: the built-in mocks serve every model)"
            if config.offline
            else "online"
        )
    )
    print("providers:")
    rows = []
    for provider in config.providers.values():
        shown = _masked(provider.name, provider)
        assert isinstance(shown, dict)
        keys = ", ".join(shown.pop("keys")) or "(none)"
        fmt, base_url = shown.pop("format"), shown.pop("base_url")
        if provider.is_mock:
            base_url, keys = "(built in, offline)", "not needed"
        if shown.pop("responses") is False and fmt == "openai":  # said when not the default
            shown["responses"] = "false"
        extra = "".join(f"  {k}={v}" for k, v in shown.items() if v not in (None, {}, []))
        rows.append((provider.name, fmt, base_url, f"keys: {keys}{extra}"))
    names, width = max(len(row[0]) for row in rows), max(len(row[2]) for row in rows)
    for name, fmt, base_url, rest in rows:
        print(f"  {name:<{names}} {fmt:<9} {base_url:<{width}}  {rest}")
    print("aliases:" + ("" if config.aliases else " (none)"))
    for alias, targets in config.aliases.items():
        print(f"  {alias} -> {', '.join(map(str, targets))}")
    print("settings:")
    for key, value in described.items():
        if key not in ("offline", "providers", "aliases"):
            print(f"  {key} = {value}")
    return EXIT_OK
