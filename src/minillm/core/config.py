"""One frozen configuration object, built at the edge from env and TOML.

:meth:`Config.load` reads the environment (and the optional TOML file named by
``MINI_LLM_CONFIG`` or ``--config``); environment variables win over the file,
command-line flags over both.  Anything invalid, an unknown key in the file
included, raises :class:`ConfigError` whose message names where the value came
from (``--port``, ``MINI_LLM_PORT``, ``minillm.toml [providers.local] base_url``),
so start-up fails with one clear line instead of silently ignoring it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import platformdirs

from minillm.core._provider_config import MOCK_PROVIDERS, ProviderConfig, load_providers
from minillm.core._settings import (
    SCALARS,
    ConfigError,
    ConfigFile,
    check_keys,
    flag_name,
)
from minillm.core.auth import KEY_FIELDS, GatewayKey, is_loopback, parse_gateway_keys

__all__ = [
    "BUILTIN_PROVIDERS",
    "DEFAULT_PORT",
    "Config",
    "ConfigError",
    "ProviderConfig",
    "Target",
    "parse_target",
]

MiB = 1024 * 1024
DEFAULT_PORT = 3333
BUILTIN_PROVIDERS = ("openai", "anthropic", *MOCK_PROVIDERS)
_PARSERS = {key: parse for _, key, parse in SCALARS}
_TOP_KEYS = (*_PARSERS, "providers", "aliases", "models", "auth")
_MODEL_KEYS = ("targets", "input_per_mtok", "output_per_mtok")


@dataclass(frozen=True, slots=True)
class Target:
    """One place a request can be sent: a provider name and its model name."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the gateway needs, validated.  Build with :meth:`load`."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    aliases: Mapping[str, tuple[Target, ...]] = field(default_factory=dict)
    max_body_bytes: int = 10 * MiB
    request_timeout: float = 60.0
    stream_idle_timeout: float | None = None  # default: request_timeout
    client_timeout: float | None = None  # default: request_timeout, at most 30 s
    shutdown_grace: float = 10.0
    default_max_tokens: int = 4096
    max_connections: int = 4096
    # httpx closes idle connections while its pool holds more than this: below the
    # number of concurrent streams, every finished stream would cost a new connection
    max_keepalive: int = 4096
    mock_chunk_delay: float = 0.02
    log_level: str = "info"
    retries: int = 2
    key_cooldown: float = 5.0
    key_disable: float = 300.0
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    max_in_flight: int = 4096
    queue_timeout: float = 1.0
    discover_models: bool = False
    auth_keys: tuple[GatewayKey, ...] = ()
    allow_unauthenticated: bool = False
    usage_db: str | None = None  # Config.load() defaults it under the user data directory
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # per Mtok in, out
    log_format: str = "text"
    port_from: str | None = field(default=None, repr=False)
    """Where the port was set (``--port``, ``MINI_LLM_PORT``, the file); None for the
    default port, the only one that may move to the next free port when taken."""
    workers: int = 1  # `minillm serve` worker processes on one socket
    redis_url: str | None = None  # shared state of several processes (limits, health, budgets)
    redis_prefix: str = "minillm:"
    redis_timeout: float = 0.05  # seconds a call to Redis may take before local state is used

    @property
    def idle_timeout(self) -> float:
        """Seconds a stream may go without progress (upstream or client) before it ends."""
        return self.stream_idle_timeout or self.request_timeout

    @property
    def body_timeout(self) -> float:
        """Seconds to receive a request body."""
        return self.client_timeout or min(30.0, self.request_timeout)

    @property
    def offline(self) -> bool:
        """True when no real provider is usable: every model then goes to ``mock``."""
        return not any(
            p.keys or not p.requires_key for p in self.providers.values() if not p.is_mock
        )

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        config_file: str | os.PathLike[str] | None = None,
        **overrides: object,
    ) -> Config:
        """Build from ``env`` (default ``os.environ``) and the TOML file.

        ``overrides`` (the command line's flags, e.g. ``port="0"``) win over
        both and are checked like them, errors naming the flag (``--port``).
        """
        env = os.environ if env is None else env
        if config_file:
            file = ConfigFile.read(config_file, "--config")
        elif env.get("MINI_LLM_CONFIG"):
            file = ConfigFile.read(env["MINI_LLM_CONFIG"], "MINI_LLM_CONFIG")
        else:
            file = ConfigFile()
        check_keys(file.content, _TOP_KEYS, file.name)
        values, sources = _scalars(file, env, overrides)
        providers = load_providers(file, env)
        config = cls(
            providers=providers,
            aliases=_aliases(file, env, providers),
            prices=_prices(file),
            auth_keys=_auth_keys(file, env),
            port_from=sources.get("port"),
            **values,
        )
        _check_host(config, sources.get("host", "MINI_LLM_HOST"))
        counted = any(k.rpm or k.tpm or k.budget_usd for k in config.auth_keys)
        if config.workers > 1 and counted and config.redis_url is None:
            raise ConfigError(
                f"{sources.get('workers', 'MINI_LLM_WORKERS')}: rpm/tpm limits and budgets are"
                f" counted per process, so {config.workers} workers would allow each key several"
                " times its limit; share them through Redis (MINI_LLM_REDIS_URL) or run one worker"
            )
        return config


def _scalars(
    file: ConfigFile, env: Mapping[str, str], overrides: Mapping[str, object]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The scalar settings, and the name of the source of each one that was set."""
    if unknown := set(overrides) - set(_PARSERS):
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for env_name, key, parse in SCALARS:
        if key in overrides:
            name, raw = flag_name(key), overrides[key]
        elif env.get(env_name, "") != "":
            name, raw = env_name, env[env_name]
        elif key in file.content:
            name, raw = file.where(key=key), file.content[key]
        else:
            continue
        values[key], sources[key] = parse(name, raw), name
    values.setdefault("usage_db", str(platformdirs.user_data_path("minillm") / "usage.db"))
    return values, sources


def _check_host(config: Config, name: str) -> None:
    """A host that does not resolve is reported as such; a non-loopback one needs keys."""
    try:
        found = socket.getaddrinfo(config.host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ConfigError(f"{name}: cannot resolve host {config.host!r}") from None
    loopback = all(is_loopback(str(info[4][0])) for info in found)
    if not (config.auth_keys or config.allow_unauthenticated or loopback):
        raise ConfigError(
            f"{name}: refusing to listen on {config.host} without gateway keys"
            " (set MINI_LLM_AUTH_KEYS, or pass --allow-unauthenticated)"
        )


def _auth_keys(file: ConfigFile, env: Mapping[str, str]) -> tuple[GatewayKey, ...]:
    tables = file.table("auth", ("keys",)).get("keys", [])
    where = file.where("[auth.keys]")
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise ConfigError(f"{file.where('auth', 'keys')}: expected [[auth.keys]] tables")
    for i, table in enumerate(tables):
        check_keys(table, KEY_FIELDS, f"{where} #{i + 1}")
    try:
        return parse_gateway_keys(tables, env.get("MINI_LLM_AUTH_KEYS"), where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _prices(file: ConfigFile) -> dict[str, tuple[float, float]]:
    """``[models.<name>] input_per_mtok / output_per_mtok`` (USD per million tokens)."""
    prices: dict[str, tuple[float, float]] = {}
    for name, spec in file.tables("models", _MODEL_KEYS).items():
        if not {"input_per_mtok", "output_per_mtok"} & set(spec):
            continue
        pair = (spec.get("input_per_mtok", 0), spec.get("output_per_mtok", 0))
        if not all(isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in pair):
            raise ConfigError(f"{file.where(f'models.{name}')}: prices must be numbers >= 0")
        prices[str(name)] = (float(pair[0]), float(pair[1]))
    return prices


def parse_target(spec: object, providers: Mapping[str, object], where: str) -> Target:
    """Parse ``provider:model``; the provider must be configured."""
    if not isinstance(spec, str) or ":" not in spec:
        got = "a table" if isinstance(spec, Mapping) else repr(spec)
        raise ConfigError(f"{where}: expected 'provider:model' or a list of them, got {got}")
    provider, model = spec.split(":", 1)
    if provider.lower() not in providers:
        known = ", ".join(sorted(providers))
        raise ConfigError(f"{where}: unknown provider {provider!r} (known: {known})")
    if not model or len(model) > 200:
        raise ConfigError(f"{where}: model name must be 1-200 characters")
    return Target(provider.lower(), model)


def _aliases(
    file: ConfigFile, env: Mapping[str, str], providers: Mapping[str, ProviderConfig]
) -> dict[str, tuple[Target, ...]]:
    raw: dict[str, tuple[str, object]] = {}  # alias -> (where it was set, its targets)
    for alias, spec in file.table("aliases").items():
        raw[alias] = (file.where("aliases", alias), spec)
    for name, table in file.tables("models", _MODEL_KEYS).items():
        if "targets" in table:
            raw[name] = (file.where(f"models.{name}", "targets"), table["targets"])
    if env.get("MINI_LLM_MODEL_ALIASES", "").strip():
        where = "MINI_LLM_MODEL_ALIASES"
        try:
            parsed = orjson.loads(env["MINI_LLM_MODEL_ALIASES"])
        except orjson.JSONDecodeError:
            raise ConfigError(f"{where}: not valid JSON") from None
        if not isinstance(parsed, dict):
            raise ConfigError(f"{where}: expected a JSON object of alias -> 'provider:model'")
        raw.update({alias: (f"{where}: alias {alias!r}", spec) for alias, spec in parsed.items()})
    aliases: dict[str, tuple[Target, ...]] = {}
    for alias, (where, spec) in raw.items():
        specs = spec if isinstance(spec, list) else [spec]
        if not specs:
            raise ConfigError(f"{where}: expected at least one 'provider:model'")
        aliases[alias] = tuple(parse_target(s, providers, where) for s in specs)
    return aliases
