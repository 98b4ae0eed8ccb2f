"""One object per client API: its routes, its error shape, its stream error, its crossings."""

from __future__ import annotations

import orjson
import pytest

from minillm.core.config import ProviderConfig
from minillm.core.dialects import DIALECTS, dialect_of, endpoint_of, exchange
from minillm.core.errors import RateLimited
from minillm.core.exchange import Call

OPENAI = ProviderConfig("o", "openai", "http://o.invalid/v1")
OPENAI_CHAT_ONLY = ProviderConfig("c", "openai", "http://c.invalid/v1", responses=False)
ANTHROPIC = ProviderConfig("a", "anthropic", "http://a.invalid")
BODIES = {
    "openai": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    "anthropic": {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    "responses": {"model": "m", "input": "hi"},
}


def test_every_route_has_one_dialect_and_one_endpoint() -> None:
    routes = [(d, r) for d in DIALECTS.values() for r in d.routes]
    assert len({r.path for _, r in routes}) == len(routes)
    for dialect, route in routes:
        for prefix in ("", "/openai", "/anthropic"):
            assert endpoint_of(prefix + route.path) == route.endpoint
        assert dialect_of(route.path) is dialect
    assert endpoint_of("/health") is None and endpoint_of("/v1/nope") == "other"


@pytest.mark.parametrize("name", sorted(DIALECTS))
@pytest.mark.parametrize("provider", [OPENAI, OPENAI_CHAT_ONLY, ANTHROPIC], ids=lambda p: p.name)
def test_every_dialect_reaches_every_provider_format(name: str, provider: ProviderConfig) -> None:
    dialect = DIALECTS[name]  # type: ignore[index]
    call = Call(dialect.name, dialect.routes[0].operation, BODIES[name], {})
    crossing = exchange(call, provider, "served", 64)
    sent = orjson.loads(crossing.body)
    assert sent["model"] == "served"
    if provider.serves(name):
        assert crossing.reply is None and crossing.operation == call.operation
    else:  # translated both ways, and sent as a chat call of the provider's API
        assert crossing.reply is not None and crossing.operation == "chat"
        assert "messages" in sent and "input" not in sent


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_errors_in_the_dialect_shape(name: str) -> None:
    dialect = DIALECTS[name]  # type: ignore[index]
    body = orjson.loads(dialect.render_error(RateLimited(), "req_1"))
    event = dialect.stream_error(RateLimited())
    if dialect.errors == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    else:
        assert body["error"]["code"] == "rate_limit_error" and "type" not in body
    first = {
        "openai": b'data: {"error"',
        "anthropic": b"event: error\n",
        "responses": b"event: error\n",
    }
    assert event.startswith(first[name])
