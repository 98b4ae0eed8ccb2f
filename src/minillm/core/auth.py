"""Gateway keys: who may call the gateway, which models, at what rate.

Keys come from ``MINI_LLM_AUTH_KEYS`` (comma-separated; an entry may be
``name:secret``) or TOML ``[[auth.keys]]`` tables with ``key`` or
``key_sha256`` (so the file holds no secret), ``name`` and optional
``models`` (glob allowlist), ``rpm``, ``tpm``, ``budget_usd`` and
``budget_period`` (``1d``, ``7d``, ``30d`` or ``month``, the default).  Only SHA-256 digests are
kept in memory; a presented key is hashed and compared with every digest in
constant time.  Keys are never logged: their *names* are.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import translate

from minillm.core.errors import Unauthorized

__all__ = [
    "BUDGET_PERIODS",
    "KEY_FIELDS",
    "Authenticator",
    "GatewayKey",
    "is_loopback",
    "parse_gateway_keys",
    "presented_key",
]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _compile(globs: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(translate(g) for g in globs)) if globs else None


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """One gateway key: its name, the digest of its secret, its limits."""

    name: str
    digest: bytes = field(repr=False)
    models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: str = "month"
    _allow: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", _compile(self.models))

    def allows(self, model: str) -> bool:
        """True when ``model`` matches the allowlist (an empty list allows all)."""
        return self._allow is None or self._allow.match(model) is not None


class Authenticator:
    """Finds the key a request presents; constant time over all keys."""

    def __init__(self, keys: Sequence[GatewayKey]) -> None:
        self._keys = tuple(keys)

    def authenticate(self, secret: str | None) -> GatewayKey:
        """The matching key; raises :class:`Unauthorized` otherwise."""
        if not secret:
            raise Unauthorized("Missing gateway API key")
        digest = _digest(secret)
        found: GatewayKey | None = None
        for key in self._keys:  # no early exit: timing does not depend on which key
            if hmac.compare_digest(key.digest, digest):
                found = key
        if found is None:
            raise Unauthorized()
        return found


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key in ``Authorization: Bearer ...`` (OpenAI SDK) or ``x-api-key`` (Anthropic)."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return x_api_key


def is_loopback(host: str | None) -> bool:
    """True for a loopback address (or ``localhost``)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


KEY_FIELDS = ("name", "key", "key_sha256", "models", "rpm", "tpm", "budget_usd", "budget_period")
BUDGET_PERIODS = ("1d", "7d", "30d", "month")


def _limit(raw: object, where: str) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or raw <= 0:
        raise ValueError(f"{where}: expected a positive integer, got {raw!r}")
    return raw


def _from_table(where: str, spec: Mapping[str, object]) -> GatewayKey:
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where} name: expected a non-empty string")
    if ("key" in spec) == ("key_sha256" in spec):
        raise ValueError(f"{where}: give exactly one of 'key' or 'key_sha256'")
    if "key" in spec:
        if not isinstance(spec["key"], str) or len(spec["key"]) < 8:
            raise ValueError(f"{where} key: expected a string of 8 characters or more")
        digest = _digest(spec["key"])
    else:
        hexdigest = spec["key_sha256"]
        if not isinstance(hexdigest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", hexdigest):
            raise ValueError(f"{where} key_sha256: expected 64 hex digits")
        digest = bytes.fromhex(hexdigest)
    models = spec.get("models", ())
    if not isinstance(models, Sequence) or isinstance(models, str):
        raise ValueError(f"{where} models: expected a list of globs")
    if not all(isinstance(m, str) and m for m in models):
        raise ValueError(f"{where} models: expected a list of globs")
    rpm = _limit(spec.get("rpm"), f"{where} rpm")
    tpm = _limit(spec.get("tpm"), f"{where} tpm")
    budget = spec.get("budget_usd")
    if budget is not None and (
        not isinstance(budget, int | float) or isinstance(budget, bool) or not budget > 0
    ):
        raise ValueError(f"{where} budget_usd: expected a positive number of dollars")
    period = spec.get("budget_period", "month")
    if period not in BUDGET_PERIODS:
        raise ValueError(f"{where} budget_period: expected one of {', '.join(BUDGET_PERIODS)}")
    budget_usd = None if budget is None else float(budget)
    return GatewayKey(name, digest, tuple(models), rpm, tpm, budget_usd, str(period))


def parse_gateway_keys(
    tables: Sequence[Mapping[str, object]], env_value: str | None, where: str = "[[auth.keys]]"
) -> tuple[GatewayKey, ...]:
    """Keys from TOML ``[[auth.keys]]`` ``tables`` (errors name them ``where #n``) and
    ``MINI_LLM_AUTH_KEYS``; raises ValueError."""
    keys = [_from_table(f"{where} #{i + 1}", spec) for i, spec in enumerate(tables)]
    for i, entry in enumerate(e.strip() for e in (env_value or "").split(",")):
        if not entry:
            continue
        name, sep, secret = entry.partition(":")
        if not sep:
            name, secret = f"env-{i + 1}", entry
        if len(secret) < 8 or not name:
            raise ValueError(f"MINI_LLM_AUTH_KEYS: entry {i + 1}: keys are 8 characters or more")
        keys.append(GatewayKey(name, _digest(secret)))
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ValueError("auth keys: names must be unique")
    return tuple(keys)
