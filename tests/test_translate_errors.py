"""Provider error bodies -> UpstreamHTTPError."""

from __future__ import annotations

import orjson
import pytest

from minillm.core.errors import WireFormat
from minillm.core.translate.upstream_errors import stream_upstream_error, upstream_error


def anthropic_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def openai_body(message: str, kind: str | None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (529, anthropic_body("overloaded_error", "Overloaded"), "overloaded_error", "Overloaded"),
        (400, anthropic_body("invalid_request_error", "bad x"), "invalid_request_error", "bad x"),
        (401, anthropic_body("authentication_error", "no"), "authentication_error", "no"),
        (418, anthropic_body("teapot_error", "tea"), "invalid_request_error", "tea"),
        (500, anthropic_body("future_error", "boom"), "api_error", "boom"),
    ],
)
def test_anthropic_bodies(status: int, body: bytes, kind: str, message: str) -> None:
    err = upstream_error("anthropic", status, body)
    assert (err.status, err.kind, err.message) == (status, kind, message)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            401,
            openai_body("Incorrect API key", "invalid_request_error", "invalid_api_key"),
            "authentication_error",
        ),
        (429, openai_body("quota", "insufficient_quota", "insufficient_quota"), "billing_error"),
        (429, openai_body("slow down", "requests", "rate_limit_exceeded"), "rate_limit_error"),
        (
            400,
            openai_body("too long", "invalid_request_error", "context_length_exceeded"),
            "invalid_request_error",
        ),
        (
            404,
            openai_body("no model", "invalid_request_error", "model_not_found"),
            "not_found_error",
        ),
        (500, openai_body("oops", "server_error"), "api_error"),
        (503, openai_body("busy", "server_error"), "overloaded_error"),
        (403, openai_body("nope", None), "permission_error"),
    ],
)
def test_openai_bodies(status: int, body: bytes, kind: str) -> None:
    err = upstream_error("openai", status, body)
    assert (err.status, err.kind) == (status, kind)
    assert err.message == orjson.loads(body)["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "plain string"}', "plain string"),  # some compatible servers
        (b'{"detail": "Not Found"}', "Not Found"),  # FastAPI
        (b'{"message": "bad"}', "bad"),
        (b'{"object": "error", "message": "vllm says", "code": 400}', "vllm says"),
    ],
)
def test_compatible_server_shapes(body: bytes, message: str) -> None:
    err = upstream_error("openai", 400, body)
    assert (err.message, err.kind) == (message, "invalid_request_error")


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>502 Bad Gateway at 10.0.0.3</body></html>",
        b"null",
        b"[1]",
        b'{"error": {"message": ""}}',
        b'{"error": 5}',
        b"\xff\xfe",
    ],
)
def test_garbage_bodies_get_a_generic_message(fmt: WireFormat, body: bytes) -> None:
    err = upstream_error(fmt, 502, body)
    assert (err.status, err.kind, err.message) == (502, "api_error", "Upstream error (HTTP 502)")


def test_secrets_are_scrubbed() -> None:
    body = openai_body("Incorrect API key provided: sk-abc123. Also sk-abc123!", "x")
    err = upstream_error("openai", 401, body, secrets=["sk-abc123", ""])
    assert err.message == "Incorrect API key provided: ***. Also ***!"
    assert err.kind == "authentication_error"


def test_long_messages_are_truncated_after_scrubbing() -> None:
    secret = "sk-" + "s" * 40
    message = "x" * 990 + secret + "y" * 100  # the secret straddles the 1000-char cut
    err = upstream_error(
        "anthropic", 400, anthropic_body("invalid_request_error", message), secrets=[secret]
    )
    assert err.message == "x" * 990 + "***" + "y" * 7


def test_stream_upstream_error() -> None:
    err = stream_upstream_error("anthropic", orjson.loads(anthropic_body("overloaded_error", "O")))
    assert (err.status, err.kind, err.message) == (502, "overloaded_error", "O")
    err = stream_upstream_error("openai", {"error": {"message": "m", "type": "server_error"}})
    assert (err.status, err.kind, err.message) == (502, "api_error", "m")
