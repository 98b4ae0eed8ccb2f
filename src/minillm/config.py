"""One frozen configuration object, built at the edge from env and TOML.

:meth:`Config.load` reads the environment (and the optional TOML file named by
``MINI_LLM_CONFIG`` or ``--config``); environment variables win over the file.
Anything invalid raises :class:`ConfigError` whose message names the variable,
so start-up fails with one clear line instead of silently ignoring it.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import orjson
import platformdirs

from minillm.auth import GatewayKey, is_loopback, parse_gateway_keys

__all__ = [
    "BUILTIN_PROVIDERS",
    "Config",
    "ConfigError",
    "ProviderConfig",
    "Target",
    "parse_target",
]

MiB = 1024 * 1024
ProviderFormat = Literal["openai", "anthropic"]
BUILTIN_PROVIDERS = ("openai", "anthropic", "mock")
OPENAI_REASONING_MODELS = ("o1*", "o3*", "o4*", "gpt-5*")
_PROVIDER_ENV = re.compile(
    r"^MINI_LLM_PROVIDER_([A-Za-z0-9_]+?)_(URL|KEYS?|FORMAT|RESPONSES|REASONING_MODELS)$"
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ConfigError(ValueError):
    """Invalid configuration; the message starts with the offending variable."""


@dataclass(frozen=True, slots=True)
class Target:
    """One place a request can be sent: a provider name and its model name."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider: its wire format, base URL, keys and static headers.

    ``base_url`` for the OpenAI format includes the version prefix
    (``https://api.openai.com/v1``); for the Anthropic format it does not
    (``https://api.anthropic.com``), as in each vendor's SDK.
    """

    name: str
    format: ProviderFormat
    base_url: str
    keys: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    max_in_flight: int | None = None
    timeout: float | None = None
    responses: bool = True
    """An OpenAI-format provider that serves the Responses API (``/responses``): Responses
    calls pass through.  When false they are translated to Chat Completions."""
    reasoning_models: tuple[str, ...] = ()
    """Glob patterns (``o3*``) of the provider's reasoning models."""

    def serves(self, api: str) -> bool:
        """True when calls of client API ``api`` reach this provider untranslated."""
        return api == self.format or (
            api == "responses" and self.format == "openai" and self.responses
        )

    def is_reasoning(self, model: str) -> bool:
        """Whether ``model`` matches one of :attr:`reasoning_models`."""
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.reasoning_models)

    @property
    def requires_key(self) -> bool:
        """A vendor's public API needs a key; a self-hosted server may not."""
        return self.base_url == _DEFAULT_URLS.get(self.name) and self.name != "mock"


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the gateway needs, validated.  Build with :meth:`load`."""

    host: str = "127.0.0.1"
    port: int = 3333
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    aliases: Mapping[str, tuple[Target, ...]] = field(default_factory=dict)
    max_body_bytes: int = 10 * MiB
    request_timeout: float = 60.0
    stream_idle_timeout: float | None = None  # default: request_timeout
    client_timeout: float | None = None  # default: request_timeout, at most 30 s
    shutdown_grace: float = 10.0
    default_max_tokens: int = 4096
    max_connections: int = 4096
    max_keepalive: int = 512
    mock_chunk_delay: float = 0.02
    log_level: str = "info"
    retries: int = 2
    key_cooldown: float = 30.0
    key_disable_s: float = 300.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    max_in_flight: int = 4096
    queue_timeout: float = 1.0
    discover_models: bool = False
    auth_keys: tuple[GatewayKey, ...] = ()
    allow_unauthenticated: bool = False
    usage_db: str | None = None  # Config.load() defaults it under the user data directory
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # per Mtok in, out
    log_format: str = "text"

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
            p.keys or not p.requires_key for p in self.providers.values() if p.name != "mock"
        )

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        config_file: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> Config:
        """Build from ``env`` (default ``os.environ``) and the TOML file.

        ``overrides`` (for example ``port=0`` from the command line) win
        over both.
        """
        env = os.environ if env is None else env
        path = config_file or env.get("MINI_LLM_CONFIG")
        table = _read_toml(Path(path)) if path else {}
        config = _build(table, env)
        config = replace(config, **overrides) if overrides else config
        if not (config.auth_keys or config.allow_unauthenticated or is_loopback(config.host)):
            raise ConfigError(
                f"MINI_LLM_HOST: refusing to listen on {config.host} without gateway keys"
                " (set MINI_LLM_AUTH_KEYS, or pass --allow-unauthenticated)"
            )
        return config

    def target(self, spec: str) -> Target:
        """Parse ``provider:model`` against this config's providers."""
        return parse_target(spec, self.providers, "target")


_DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "mock": "http://mock.invalid/v1",
}

# (env name, TOML key, parser, Config field)
_SCALARS: tuple[tuple[str, str, str], ...] = (
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
)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"MINI_LLM_CONFIG: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"MINI_LLM_CONFIG: {path} is not valid TOML: {exc}") from None


def _scalar(kind: str, name: str, raw: object) -> object:
    if kind == "str":
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{name}: expected a non-empty string")
        return raw
    if kind == "bool":
        if str(raw).lower() not in {"1", "true", "yes", "0", "false", "no"}:
            raise ConfigError(f"{name}: expected true or false, got {raw!r}")
        return str(raw).lower() in {"1", "true", "yes"}
    if kind == "usage_db":  # a path, or "off"
        return None if str(raw).lower() == "off" else str(raw)
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


def _build(table: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    values: dict[str, Any] = {}
    for env_name, key, kind in _SCALARS:
        if env_name in env and env[env_name] != "":
            values[key] = _scalar(kind, env_name, env[env_name])
        elif key in table:
            values[key] = _scalar(kind, f"{key} (config file)", table[key])
    providers = _providers(table.get("providers", {}), env)
    aliases = _aliases(table, env, providers)
    values.setdefault("usage_db", str(platformdirs.user_data_path("minillm") / "usage.db"))
    try:
        values["auth_keys"] = parse_gateway_keys(table.get("auth"), env.get("MINI_LLM_AUTH_KEYS"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    values["prices"] = _prices(table.get("models", {}))
    return Config(providers=providers, aliases=aliases, **values)


def _prices(models: object) -> dict[str, tuple[float, float]]:
    """``[models.<name>] input_per_mtok / output_per_mtok`` (USD per million tokens)."""
    prices: dict[str, tuple[float, float]] = {}
    for name, spec in models.items() if isinstance(models, Mapping) else ():
        if not isinstance(spec, Mapping) or not {"input_per_mtok", "output_per_mtok"} & set(spec):
            continue
        pair = (spec.get("input_per_mtok", 0), spec.get("output_per_mtok", 0))
        if not all(isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in pair):
            raise ConfigError(f"models.{name} (config file): prices must be numbers >= 0")
        prices[str(name)] = (float(pair[0]), float(pair[1]))
    return prices


def _split_keys(raw: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in raw.split(",") if k.strip())


def _keys_from_env(env: Mapping[str, str], prefix: str) -> tuple[str, ...] | None:
    for name in (f"{prefix}_KEYS", f"{prefix}_KEY"):
        if env.get(name, "").strip():
            return _split_keys(env[name])
    return None


def _providers(table: object, env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    if not isinstance(table, Mapping):
        raise ConfigError("providers (config file): expected a table of providers")
    specs: dict[str, dict[str, Any]] = {
        "openai": {
            "format": "openai",
            "base_url": _DEFAULT_URLS["openai"],
            "reasoning_models": OPENAI_REASONING_MODELS,
        },
        "anthropic": {"format": "anthropic", "base_url": _DEFAULT_URLS["anthropic"]},
    }
    for raw_name, spec in table.items():
        name = str(raw_name).lower()
        if not isinstance(spec, Mapping):
            raise ConfigError(f"providers.{raw_name} (config file): expected a table")
        merged = specs.setdefault(name, {"format": "openai"})
        merged.update({k: spec[k] for k in spec})
        if "key_env" in spec:
            merged["keys"] = _split_keys(env.get(str(spec["key_env"]), ""))
    for vendor in ("openai", "anthropic"):
        keys = _keys_from_env(env, vendor.upper() + "_API")
        if keys is not None:
            specs[vendor]["keys"] = keys
        url = env.get(f"MINI_LLM_{vendor.upper()}_BASE_URL")
        if url:
            specs[vendor]["base_url"] = url
    for var, value in env.items():
        match = _PROVIDER_ENV.match(var)
        if not match or not value:
            continue
        name, what = match.group(1).lower(), match.group(2)
        merged = specs.setdefault(name, {"format": "openai"})
        if what == "URL":
            merged["base_url"] = value
        elif what == "FORMAT":
            merged["format"] = value.lower()
        elif what == "RESPONSES":
            merged["responses"] = _scalar("bool", var, value)
        elif what == "REASONING_MODELS":
            merged["reasoning_models"] = _split_keys(value)
        else:
            merged["keys"] = _split_keys(value)
    providers = {name: _provider(name, spec) for name, spec in specs.items()}
    # the mock speaks Chat Completions only: Responses calls to it take the translation layer
    providers["mock"] = ProviderConfig("mock", "openai", _DEFAULT_URLS["mock"], responses=False)
    return providers


def _provider(name: str, spec: Mapping[str, Any]) -> ProviderConfig:
    where = f"provider {name!r}"
    if name == "mock":
        raise ConfigError(f"{where}: the name 'mock' is reserved for the built-in offline provider")
    if not _NAME.match(name):
        raise ConfigError(f"{where}: names are letters, digits, '-' and '_'")
    fmt = spec.get("format", "openai")
    if fmt not in ("openai", "anthropic"):
        raise ConfigError(f"{where}: format must be 'openai' or 'anthropic', got {fmt!r}")
    url = spec.get("base_url")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(
            f"{where}: base URL must be an http(s) URL (MINI_LLM_PROVIDER_{name.upper()}_URL)"
        )
    keys = spec.get("keys", ())
    if isinstance(keys, str):
        keys = _split_keys(keys)
    if not isinstance(keys, Sequence) or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{where}: keys must be a list of strings")
    headers = spec.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigError(f"{where}: headers must be a table of strings")
    limit = spec.get("max_in_flight")
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise ConfigError(f"{where}: max_in_flight must be a positive integer")
    timeout = spec.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise ConfigError(f"{where}: timeout must be a positive number of seconds")
    responses = spec.get("responses", True)
    if not isinstance(responses, bool):
        raise ConfigError(f"{where}: responses must be true or false")
    reasoning = spec.get("reasoning_models", ())
    if isinstance(reasoning, str):
        reasoning = _split_keys(reasoning)
    if not isinstance(reasoning, Sequence) or not all(isinstance(p, str) for p in reasoning):
        raise ConfigError(f"{where}: reasoning_models must be a list of model name patterns")
    return ProviderConfig(
        name=name,
        format=fmt,
        base_url=url.rstrip("/"),
        keys=tuple(keys),
        headers=dict(headers),
        max_in_flight=limit,
        timeout=None if timeout is None else float(timeout),
        responses=responses,
        reasoning_models=tuple(reasoning),
    )


def parse_target(spec: object, providers: Mapping[str, object], where: str) -> Target:
    """Parse ``provider:model``; the provider must be configured."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"{where}: expected 'provider:model', got {spec!r}")
    provider, model = spec.split(":", 1)
    if provider.lower() not in providers:
        known = ", ".join(sorted(providers))
        raise ConfigError(f"{where}: unknown provider {provider!r} (known: {known})")
    if not model or len(model) > 200:
        raise ConfigError(f"{where}: model name must be 1-200 characters")
    return Target(provider.lower(), model)


def _aliases(
    table: Mapping[str, Any], env: Mapping[str, str], providers: Mapping[str, ProviderConfig]
) -> dict[str, tuple[Target, ...]]:
    raw: dict[str, object] = {}
    where = "aliases (config file)"
    file_aliases = table.get("aliases", {})
    if not isinstance(file_aliases, Mapping):
        raise ConfigError(f"{where}: expected a table")
    raw.update(file_aliases)
    models = table.get("models", {})
    if isinstance(models, Mapping):
        for name, spec in models.items():
            if isinstance(spec, Mapping) and "targets" in spec:
                raw[name] = spec["targets"]
    if env.get("MINI_LLM_MODEL_ALIASES", "").strip():
        where = "MINI_LLM_MODEL_ALIASES"
        try:
            parsed = orjson.loads(env["MINI_LLM_MODEL_ALIASES"])
        except orjson.JSONDecodeError:
            raise ConfigError(f"{where}: not valid JSON") from None
        if not isinstance(parsed, dict):
            raise ConfigError(f"{where}: expected a JSON object of alias -> 'provider:model'")
        raw.update(parsed)
    aliases: dict[str, tuple[Target, ...]] = {}
    for alias, spec in raw.items():
        specs = spec if isinstance(spec, list) else [spec]
        if not specs:
            raise ConfigError(f"{where}: alias {alias!r} has no targets")
        aliases[alias] = tuple(
            parse_target(s, providers, f"{where}: alias {alias!r}") for s in specs
        )
    return aliases
