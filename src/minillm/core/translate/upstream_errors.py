"""Provider error bodies -> :class:`~minillm.core.errors.UpstreamHTTPError`.

The message is the provider's own ``error.message`` (also accepted: an
``error`` string, a top-level ``message`` or FastAPI-style ``detail`` string, as
OpenAI-compatible servers vary), truncated to 1000 characters, with every
provider key in ``secrets`` replaced by ``***``.  Anything else (empty, HTML,
plain text, junk) gives ``"Upstream error (HTTP <status>)"``: raw text may hold
hosts or stack traces, so it is never relayed.

The kind is the body's Anthropic ``error.type`` when it is a known kind; for
OpenAI bodies the ``error.code`` / ``error.type`` when it is specific (for
example ``invalid_api_key`` -> ``authentication_error``, ``insufficient_quota``
-> ``billing_error``); otherwise it follows the status (:func:`status_kind`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from minillm.core.errors import UpstreamHTTPError, WireFormat, status_kind

__all__ = ["stream_upstream_error", "upstream_error"]

MAX_MESSAGE = 1000

_ANTHROPIC_KINDS = frozenset({
    "invalid_request_error", "authentication_error", "billing_error", "permission_error",
    "not_found_error", "request_too_large", "rate_limit_error", "timeout_error",
    "api_error", "overloaded_error",
})  # fmt: skip

# Specific OpenAI error codes/types; the generic "invalid_request_error" and
# "server_error" say less than the status, so they are left to status_kind().
_OPENAI_KINDS = {
    "invalid_api_key": "authentication_error",
    "authentication_error": "authentication_error",
    "insufficient_quota": "billing_error",
    "permission_error": "permission_error",
    "permission_denied": "permission_error",
    "unsupported_country_region_territory": "permission_error",
    "model_not_found": "not_found_error",
    "not_found_error": "not_found_error",
    "rate_limit_exceeded": "rate_limit_error",
    "rate_limit_error": "rate_limit_error",
    "context_length_exceeded": "invalid_request_error",
    "timeout": "timeout_error",
}


def upstream_error(
    fmt: WireFormat, status: int, body: bytes, *, secrets: Sequence[str] = ()
) -> UpstreamHTTPError:
    """The gateway error for a provider's HTTP ``status`` and error ``body`` in API ``fmt``.

    A body in the API's own error shape is also kept (with every secret
    replaced by ``***``) to be relayed as it is to clients of the same API.
    """
    for secret in secrets:
        if secret:
            body = body.replace(secret.encode(), b"***")
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    error = _from_parsed(fmt, status, parsed, secrets)
    if isinstance(parsed, dict) and _is_error_shape(fmt, parsed):
        error.original = (fmt, parsed)
    return error


def _is_error_shape(fmt: WireFormat, parsed: dict[str, Any]) -> bool:
    inner = parsed.get("error")
    if not isinstance(inner, dict) or not isinstance(inner.get("message"), str):
        return False
    return fmt == "openai" or parsed.get("type") == "error"


def stream_upstream_error(fmt: WireFormat, parsed: object) -> UpstreamHTTPError:
    """The gateway error for an error event a provider sent mid-stream (HTTP 200
    already sent; reported as 502 with the event's kind when known)."""
    return _from_parsed(fmt, 502, parsed, ())


def _from_parsed(
    fmt: WireFormat, status: int, parsed: object, secrets: Sequence[str]
) -> UpstreamHTTPError:
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = _message(parsed, error)
    kind = _kind(fmt, error) or status_kind(status)
    if message is None:
        return UpstreamHTTPError(status, f"Upstream error (HTTP {status})", kind)
    for secret in secrets:  # before truncating, so no secret is cut in half
        if secret:
            message = message.replace(secret, "***")
    return UpstreamHTTPError(status, message[:MAX_MESSAGE], kind)


def _message(parsed: object, error: object) -> str | None:
    if isinstance(error, dict):
        error = error.get("message")
    if isinstance(error, str) and error:
        return error
    if isinstance(parsed, dict):
        for key in ("message", "detail"):
            if isinstance(value := parsed.get(key), str) and value:
                return value
    return None


def _kind(fmt: WireFormat, error: object) -> str | None:
    if not isinstance(error, dict):
        return None
    if fmt == "anthropic":
        kind = error.get("type")
        return kind if isinstance(kind, str) and kind in _ANTHROPIC_KINDS else None
    for key in ("code", "type"):
        if isinstance(value := error.get(key), str) and value in _OPENAI_KINDS:
            return _OPENAI_KINDS[value]
    return None
