"""Model name -> ordered provider targets (sans-I/O).

Resolution order: an alias; then an explicit ``provider:model`` whose prefix is
a configured provider; then, when no provider is usable (offline), the
built-in ``mock`` provider; otherwise a name containing ``claude`` goes to
``anthropic`` and anything else to ``openai``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from minillm.config import Target
from minillm.errors import BadRequest

__all__ = ["MAX_MODEL_LENGTH", "resolve_alias", "validate_model"]

MAX_MODEL_LENGTH = 100


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
    providers: Collection[str],
    *,
    offline: bool = False,
) -> tuple[Target, ...]:
    """The targets for ``model``, first choice first.

    ``providers`` are the configured provider names (lower case).  Raises
    :class:`BadRequest` for an invalid model name.
    """
    name = validate_model(model)
    if name in aliases:
        return aliases[name]
    prefix, sep, rest = name.partition(":")
    if sep and rest and prefix.lower() in providers:
        return (Target(prefix.lower(), rest),)
    if offline:
        return (Target("mock", name),)
    return (Target("anthropic" if "claude" in name.lower() else "openai", name),)
