"""Typed gateway errors and their rendering in the called API's format.

Every error the gateway answers with is a :class:`GatewayError` subclass that
carries its HTTP status and an error *kind*.  The kind uses Anthropic's error
type names (the richer of the two vocabularies); :func:`render_error` turns it
into the body shape of whichever API the client called.  Messages are fixed or
built from client input only: upstream hosts, keys and tracebacks never reach
a client (they go to the log).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar, Literal

import orjson

__all__ = [
    "BadRequest",
    "BudgetExceeded",
    "CircuitOpen",
    "ClientTimeout",
    "Forbidden",
    "GatewayError",
    "KeysRateLimited",
    "MethodNotAllowed",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "ProviderNotConfigured",
    "RateLimited",
    "Unauthorized",
    "UpstreamHTTPError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "WireFormat",
    "error_body",
    "openai_error_type",
    "render_error",
    "status_kind",
]

WireFormat = Literal["openai", "anthropic"]


class GatewayError(Exception):
    """Base of every error answered to a client.

    ``status`` and ``kind`` are class-level defaults; :class:`UpstreamHTTPError`
    sets them per instance.  ``headers`` are extra response headers (for
    example ``Retry-After``).
    """

    status: int = 500
    kind: str = "api_error"
    default_message: ClassVar[str] = "Internal server error"
    openai_code: ClassVar[str | None] = None
    """OpenAI's ``type`` and ``code`` when they say more than the kind does."""

    def __init__(self, message: str | None = None, *, headers: Mapping[str, str] | None = None):
        self.message = message or self.default_message
        self.headers: Mapping[str, str] = headers or {}
        super().__init__(self.message)


class BadRequest(GatewayError):
    status, kind = 400, "invalid_request_error"
    default_message = "Invalid request"


class NotFound(GatewayError):
    status, kind = 404, "not_found_error"
    default_message = "Not found"


class Unauthorized(GatewayError):
    """No gateway key, or not a valid one."""

    status, kind = 401, "authentication_error"
    default_message = "Invalid or missing gateway API key"


class Forbidden(GatewayError):
    """A valid gateway key that may not use the requested model."""

    status, kind = 403, "permission_error"
    default_message = "This key may not use this model"


class RateLimited(GatewayError):
    """Over a gateway key's rpm/tpm limit; ``headers`` carry ``Retry-After``."""

    status, kind = 429, "rate_limit_error"
    default_message = "Rate limit exceeded for this key"


class BudgetExceeded(GatewayError):
    """A gateway key spent its budget for the current period; ``Retry-After``: the
    period's end."""

    status, kind = 429, "rate_limit_error"
    openai_code = "insufficient_quota"

    def __init__(self, budget: float, period: str, seconds: float) -> None:
        wait = max(1, math.ceil(seconds))
        message = (
            f"This key has spent its budget of ${budget:g} for this period ({period});"
            f" it renews in {wait}s"
        )
        super().__init__(message, headers={"retry-after": str(wait)})


class MethodNotAllowed(GatewayError):
    status, kind = 405, "invalid_request_error"
    default_message = "Method not allowed"


class ClientTimeout(GatewayError):
    """The client did not send its request body in time."""

    status, kind = 408, "timeout_error"
    default_message = "Timed out reading the request body"


class PayloadTooLarge(GatewayError):
    status, kind = 413, "request_too_large"
    default_message = "Request body too large"


class Overloaded(GatewayError):
    status, kind = 503, "overloaded_error"
    default_message = "Gateway overloaded, retry later"


class ProviderNotConfigured(GatewayError):
    """The routed provider has no API key (message names the provider only)."""

    status, kind = 503, "api_error"
    default_message = "Provider not configured"


class UpstreamUnavailable(GatewayError):
    """Connection-level failure talking to a provider; details are logged only."""

    status, kind = 502, "api_error"
    default_message = "Provider unavailable"


class UpstreamProtocolError(UpstreamUnavailable):
    """The provider answered something that is not valid for its API."""


class UpstreamTimeout(GatewayError):
    status, kind = 504, "timeout_error"
    default_message = "Provider timed out"


class UpstreamHTTPError(GatewayError):
    """An HTTP error status answered by the provider, relayed to the client.

    ``message`` has already been extracted from the provider's error body and
    scrubbed of the provider key by the caller.
    """

    def __init__(
        self,
        status: int,
        message: str,
        kind: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        original: tuple[WireFormat, dict[str, object]] | None = None,
    ):
        super().__init__(message, headers=headers)
        self.status = status
        self.kind = kind or status_kind(status)
        self.original = original
        """The provider's own error body (scrubbed) and its API: relayed as it is to
        clients of the same API, so fields like OpenAI's ``code`` survive."""
        self.wait: float | None = None
        """Seconds the provider explicitly asked to wait (``Retry-After``, or a 429's
        rate-limit reset headers), read when it answered; None without a hint."""


class ProviderResting(GatewayError):
    """A provider the gateway does not call right now; ``Retry-After`` says when it will.

    The message names the provider only.
    """

    template: ClassVar[str]

    def __init__(self, provider: str, seconds: float) -> None:
        wait = max(1, math.ceil(seconds))
        message = self.template.format(provider=provider, seconds=wait)
        super().__init__(message, headers={"retry-after": str(wait)})


class KeysRateLimited(ProviderResting):
    """Every key of the provider cools because the provider said so (and nothing else is left)."""

    status, kind = 429, "rate_limit_error"
    template = "Every key of provider '{provider}' is rate limited by it; retry after {seconds}s"


class CircuitOpen(ProviderResting):
    """The provider's circuit breaker is open (and nothing else is left)."""

    status, kind = 503, "overloaded_error"
    template = "Provider '{provider}' is failing; it is tried again in {seconds}s"


_KIND_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_OPENAI_TYPE = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "billing_error": "insufficient_quota",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "timeout_error": "timeout",
    "overloaded_error": "server_error",
    "api_error": "server_error",
}


def status_kind(status: int) -> str:
    """The Anthropic-style error kind for an HTTP status."""
    if status in _KIND_BY_STATUS:
        return _KIND_BY_STATUS[status]
    return "invalid_request_error" if status < 500 else "api_error"


def openai_error_type(kind: str) -> str:
    """OpenAI's ``error.type`` for a gateway error kind."""
    return _OPENAI_TYPE.get(kind, kind)


def error_body(
    fmt: WireFormat,
    kind: str,
    message: str,
    request_id: str | None = None,
    *,
    openai_code: str | None = None,
) -> dict[str, object]:
    """The error object of API ``fmt`` (a plain dict, ready to serialise).

    ``request_id``, when given, is added at the top level (as Anthropic does);
    ``openai_code`` replaces OpenAI's ``type`` and ``code``.
    """
    body: dict[str, object]
    if fmt == "anthropic":
        body = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        body = {
            "error": {
                "message": message,
                "type": openai_code or openai_error_type(kind),
                "param": None,
                "code": openai_code or kind,
            }
        }
    if request_id is not None:
        body["request_id"] = request_id
    return body


def render_error(fmt: WireFormat, exc: GatewayError, request_id: str | None = None) -> bytes:
    """Serialise ``exc`` as the error body of API ``fmt``."""
    original = getattr(exc, "original", None)
    if original is not None and original[0] == fmt:
        body = original[1] if request_id is None else {**original[1], "request_id": request_id}
        return orjson.dumps(body)
    return orjson.dumps(
        error_body(fmt, exc.kind, exc.message, request_id, openai_code=exc.openai_code)
    )
