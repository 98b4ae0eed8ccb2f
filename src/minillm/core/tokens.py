"""Token counts picked out of replies cheaply, without parsing whole bodies.

Sans-I/O.  The APIs put a ``usage`` object in their replies; only that object
is parsed (orjson on a slice), so a large embeddings body costs one
``rfind``.  Counts are normalised to the gateway's convention: ``input``
includes cached prompt tokens (OpenAI's ``prompt_tokens`` and Responses'
``input_tokens``; Anthropic's ``input_tokens`` + cache reads + cache writes),
``cache_read`` and ``cache_write`` are reported separately when the provider
reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Tokens", "tokens_from_usage", "usage_in_json"]

_KEY = b'"usage"'


@dataclass(slots=True)
class Tokens:
    """Token counts of one request; ``None`` where the provider said nothing."""

    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None

    def update(self, other: Tokens) -> None:
        """Take every count ``other`` knows (later stream events win)."""
        for name in ("input", "output", "cache_read", "cache_write"):
            value = getattr(other, name)
            if value is not None:
                setattr(self, name, value)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def tokens_from_usage(usage: object) -> Tokens:
    """Normalise an OpenAI (Chat or Responses) or Anthropic ``usage`` object
    (anything else: no counts)."""
    if not isinstance(usage, dict):
        return Tokens()
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return Tokens(_int(prompt), _int(completion), _cached(usage, "prompt_tokens_details"))
    if "input_tokens_details" in usage or "total_tokens" in usage:  # Responses
        fresh, output = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        return Tokens(fresh, output, _cached(usage, "input_tokens_details"))
    read = _int(usage.get("cache_read_input_tokens"))
    write = _int(usage.get("cache_creation_input_tokens"))
    fresh = _int(usage.get("input_tokens"))
    total = None if fresh is None else fresh + (read or 0) + (write or 0)
    return Tokens(total, _int(usage.get("output_tokens")), read, write)


def _cached(usage: dict[str, Any], details_key: str) -> int | None:
    details = usage.get(details_key)
    return _int(details.get("cached_tokens")) if isinstance(details, dict) else None


def usage_in_json(data: bytes) -> Any:
    """The last ``"usage": {...}`` object in JSON text ``data``, or ``None``.

    A JSON string cannot hold ``"usage"`` with bare quotes, so the match is a
    key.  Only the object after it is decoded.
    """
    at = data.rfind(_KEY)
    if at < 0:
        return None
    start = data.find(b"{", at + len(_KEY))
    if start < 0 or data[at + len(_KEY) : start].strip() != b":":
        return None
    end = _object_end(data, start)
    if end < 0:
        return None
    try:
        return orjson.loads(data[start:end])
    except orjson.JSONDecodeError:
        return None


def _object_end(data: bytes, start: int) -> int:
    """Index just past the JSON object opening at ``start``, or -1."""
    depth, i, n, in_string = 0, start, len(data), False
    while i < n:
        c = data[i]
        if in_string:
            if c == 0x5C:  # backslash: skip the escaped byte
                i += 1
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c == 0x7B:
            depth += 1
        elif c == 0x7D:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1
