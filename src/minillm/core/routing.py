"""Model name -> ordered provider targets (sans-I/O).

Resolution order: an alias; then an explicit ``provider:model`` whose prefix is
a configured provider; then the default provider of the name: ``anthropic``
for a name containing ``claude``, ``openai`` for anything else, or, when no
provider is usable (offline), the built-in mock of the same format
(``mock-anthropic`` or ``mock``).

A name whose prefix looks like a provider that is not configured
(``nosuch:model``) is a 400 listing the known providers when its default
provider is a vendor's public API, which serves no such names; OpenAI's
fine-tuned models (``ft:gpt-4o-mini:org::id``) are the exception.  When the
default provider points elsewhere (``MINI_LLM_OPENAI_BASE_URL`` at Ollama or
vLLM), ``llama3:8b`` goes there as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from minillm.core.config import ProviderConfig, Target
from minillm.core.errors import BadRequest

__all__ = ["MAX_MODEL_LENGTH", "resolve_alias", "validate_model"]

MAX_MODEL_LENGTH = 100
_PROVIDER_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_VENDOR_PREFIXES = {"openai": {"ft"}, "anthropic": set[str]()}  # prefixes vendors serve


def validate_model(model: object) -> str:
    """The model name, or :class:`BadRequest` if it is not a sane one."""
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string")
    if len(model) > MAX_MODEL_LENGTH:
        raise BadRequest(f"'model' must be at most {MAX_MODEL_LENGTH} characters")
    if not model.isprintable() or model != model.strip():
        raise BadRequest("'model' must not contain control characters or surrounding spaces")
    return model


def resolve_alias(
    model: object,
    aliases: Mapping[str, tuple[Target, ...]],
    providers: Mapping[str, ProviderConfig],
    *,
    offline: bool = False,
) -> tuple[Target, ...]:
    """The targets for ``model``, first choice first.

    ``providers`` are the configured providers by (lower-case) name.  Raises
    :class:`BadRequest` for an invalid model name or an unknown provider prefix.
    """
    name = validate_model(model)
    if name in aliases:
        return aliases[name]
    prefix, sep, rest = name.partition(":")
    if sep and not rest and prefix.lower() in providers:
        raise BadRequest(f"'model' has no model name after '{prefix}:'")
    if sep and rest and prefix.lower() in providers:
        return (Target(prefix.lower(), rest),)
    default = "anthropic" if "claude" in name.lower() else "openai"
    vendor = providers[default]
    if (
        sep
        and _PROVIDER_LIKE.fullmatch(prefix)
        and vendor.requires_key
        and prefix not in _VENDOR_PREFIXES[default]
    ):
        known = ", ".join(sorted(providers))
        raise BadRequest(f"Unknown provider '{prefix}' in model '{name}' (known: {known})")
    if offline:
        return (Target("mock-anthropic" if default == "anthropic" else "mock", name),)
    return (Target(default, name),)
