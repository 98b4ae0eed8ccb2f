"""Providers from the environment and the TOML file, each field traced to its source.

The two vendors (``openai``, ``anthropic``) always exist; ``[providers.<name>]``
tables and ``MINI_LLM_PROVIDER_<NAME>_*`` variables add or change providers
(the environment wins, field by field); the built-in offline providers
``mock`` (OpenAI format) and ``mock-anthropic`` (Anthropic format) are added
last.  An invalid field is reported where it was set: ``minillm.toml
[providers.local] base_url`` or ``MINI_LLM_PROVIDER_LOCAL_URL``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from minillm.core._settings import ConfigError, ConfigFile, flag

__all__ = ["MOCK_PROVIDERS", "PROVIDER_KEYS", "ProviderConfig", "load_providers", "split_keys"]

ProviderFormat = Literal["openai", "anthropic"]
PROVIDER_KEYS = (
    "base_url",
    "format",
    "keys",
    "key_env",
    "headers",
    "max_in_flight",
    "timeout",
    "responses",
    "reasoning_models",
)
OPENAI_REASONING_MODELS = ("o1*", "o3*", "o4*", "gpt-5*")
MOCK_PROVIDERS: Mapping[str, ProviderFormat] = {"mock": "openai", "mock-anthropic": "anthropic"}
_DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "mock": "http://mock.invalid/v1",
    "mock-anthropic": "http://mock.invalid",
}
_PROVIDER_ENV = re.compile(
    r"^MINI_LLM_PROVIDER_([A-Za-z0-9_]+?)_(URL|KEYS?|FORMAT|RESPONSES|REASONING_MODELS)$"
)
_ENV_FIELDS = {
    "URL": "base_url",
    "FORMAT": "format",
    "KEY": "keys",
    "KEYS": "keys",
    "RESPONSES": "responses",
    "REASONING_MODELS": "reasoning_models",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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
    def is_mock(self) -> bool:
        """One of the built-in offline providers, answered in-process."""
        return self.name in MOCK_PROVIDERS

    @property
    def requires_key(self) -> bool:
        """A vendor's public API needs a key; a self-hosted server may not."""
        return self.base_url == _DEFAULT_URLS.get(self.name) and not self.is_mock


def split_keys(raw: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in raw.split(",") if k.strip())


class _Specs:
    """Provider fields as they are merged, and where each one was set."""

    def __init__(self) -> None:
        self.fields: dict[str, dict[str, object]] = {
            vendor: {"format": vendor, "base_url": _DEFAULT_URLS[vendor]}
            for vendor in ("openai", "anthropic")
        }
        self.fields["openai"]["reasoning_models"] = OPENAI_REASONING_MODELS
        self.origins: dict[str, dict[str, str]] = {"openai": {}, "anthropic": {}}

    def set(self, name: str, key: str, value: object, origin: str) -> None:
        self.fields.setdefault(name, {"format": "openai"})[key] = value
        self.origins.setdefault(name, {})[key] = origin


def load_providers(file: ConfigFile, env: Mapping[str, str]) -> dict[str, ProviderConfig]:
    """Every provider, validated; raises :class:`ConfigError` naming the source."""
    specs = _Specs()
    declared: dict[str, str] = {}  # provider -> where it was first named
    for raw_name, table in file.tables("providers", PROVIDER_KEYS).items():
        name, where = raw_name.lower(), file.where(f"providers.{raw_name}")
        declared.setdefault(name, where)
        for key, value in table.items():
            if key == "key_env":
                if not isinstance(value, str) or not value:
                    raise ConfigError(f"{where} key_env: expected the name of a variable")
                specs.set(name, "keys", split_keys(env.get(value, "")), value)
            else:
                specs.set(name, key, value, f"{where} {key}")
    for vendor in ("openai", "anthropic"):
        for var in (f"{vendor.upper()}_API_KEYS", f"{vendor.upper()}_API_KEY"):
            if env.get(var, "").strip():
                specs.set(vendor, "keys", split_keys(env[var]), var)
                break
        if url := env.get(f"MINI_LLM_{vendor.upper()}_BASE_URL"):
            specs.set(vendor, "base_url", url, f"MINI_LLM_{vendor.upper()}_BASE_URL")
    for var, value in sorted(env.items()):
        if (match := _PROVIDER_ENV.match(var)) and value:
            name, what = match.group(1).lower(), _ENV_FIELDS[match.group(2)]
            declared.setdefault(name, var)
            parsed: object = value
            if what in ("keys", "reasoning_models"):
                parsed = split_keys(value)
            elif what == "responses":
                parsed = flag(var, value)
            specs.set(name, what, value.lower() if what == "format" else parsed, var)
    providers = {
        name: _provider(name, spec, specs.origins[name], declared.get(name, name))
        for name, spec in specs.fields.items()
    }
    for name, fmt in MOCK_PROVIDERS.items():
        # the mocks speak Chat Completions and Messages only: Responses calls to them are translated
        providers[name] = ProviderConfig(name, fmt, _DEFAULT_URLS[name], responses=False)
    return providers


def _provider(
    name: str, spec: Mapping[str, object], origins: Mapping[str, str], declared: str
) -> ProviderConfig:
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{origins.get(key, declared)}: {problem}")

    if name in MOCK_PROVIDERS:
        raise ConfigError(f"{declared}: the name {name!r} is reserved for a built-in provider")
    if not _NAME.match(name):
        raise ConfigError(f"{declared}: provider names are letters, digits, '-' and '_'")
    fmt = spec.get("format", "openai")
    if fmt not in ("openai", "anthropic"):
        raise fail("format", f"expected 'openai' or 'anthropic', got {fmt!r}")
    url = spec.get("base_url")
    if url is None:
        from_env = declared.startswith("MINI_LLM_")
        need = f"MINI_LLM_PROVIDER_{name.upper()}_URL" if from_env else "base_url"
        raise ConfigError(f"{declared}: provider {name!r} has no {need} (an http(s) URL)")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise fail("base_url", "expected an http(s) URL")
    keys = spec.get("keys", ())
    if isinstance(keys, str):
        keys = split_keys(keys)
    if not isinstance(keys, Sequence) or not all(isinstance(k, str) for k in keys):
        raise fail("keys", "expected a list of strings")
    headers = spec.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise fail("headers", "expected a table of strings")
    try:
        limit = _positive(spec.get("max_in_flight"), whole=True)
    except ValueError:
        raise fail("max_in_flight", "expected a positive integer") from None
    try:
        timeout = _positive(spec.get("timeout"), whole=False)
    except ValueError:
        raise fail("timeout", "expected a positive number of seconds") from None
    responses = spec.get("responses", True)
    if not isinstance(responses, bool):
        raise fail("responses", "expected true or false")
    reasoning = spec.get("reasoning_models", ())
    if isinstance(reasoning, str):
        reasoning = split_keys(reasoning)
    if not isinstance(reasoning, Sequence) or not all(isinstance(p, str) for p in reasoning):
        raise fail("reasoning_models", "expected a list of model name patterns")
    return ProviderConfig(
        name=name,
        format="anthropic" if fmt == "anthropic" else "openai",
        base_url=url.rstrip("/"),
        keys=tuple(str(k) for k in keys),
        headers={str(k): str(v) for k, v in headers.items()},
        max_in_flight=None if limit is None else int(limit),
        timeout=timeout,
        responses=responses,
        reasoning_models=tuple(str(p) for p in reasoning),
    )


def _positive(value: object, *, whole: bool) -> float | None:
    """``value`` if it is a positive number (an integer when ``whole``), None if absent;
    raises ValueError otherwise."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int if whole else int | float)
        or value <= 0
    ):
        raise ValueError(value)
    return float(value)
