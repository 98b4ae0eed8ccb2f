"""Gateway.handle on its own: providers over httpx.MockTransport, time on the autojump clock.

Each test scripts what the upstream answers per call and asserts what the gateway
did with it: retries, failover, waits, key rests, the breaker, slots, deadlines.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import orjson
import pytest
import trio

# The gateway's public pieces used here; one place to fix when modules move.
from minillm.core.config import Config, ProviderConfig, Target
from minillm.core.errors import (
    CircuitOpen,
    GatewayError,
    KeysRateLimited,
    Overloaded,
    UpstreamHTTPError,
    UpstreamTimeout,
)
from minillm.core.exchange import Call
from minillm.core.provider_state import LocalHealth
from minillm.runtime.gateway import Gateway, StreamReply
from minillm.runtime.providers.http import HTTPProvider

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]

KEY_A1 = "sk-test-alpha-key-0001"
KEY_A2 = "sk-test-alpha-key-0002"
KEY_B = "sk-test-bravo-key-0003"

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}

# every test runs on the autojump clock (pytest-trio picks it from the test's own arguments)
pytestmark = pytest.mark.usefixtures("hang_guard")


def ok() -> httpx.Response:
    return httpx.Response(200, json=COMPLETION)


def status(code: int, **headers: str) -> httpx.Response:
    body = {"error": {"message": f"upstream says {code}", "type": "server_error"}}
    return httpx.Response(code, json=body, headers=headers)


class Upstream:
    """A scripted provider: each call pops the next step (a response, an exception to
    raise, or an async callable producing a response); the requests are kept."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(trio.current_time())
        step = self.steps.pop(0) if self.steps else ok()
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return await step()  # type: ignore[no-any-return]
        assert isinstance(step, httpx.Response)
        return step

    @property
    def keys(self) -> list[str]:
        return [r.headers["authorization"].removeprefix("Bearer ") for r in self.requests]


def provider(name: str, upstream: Upstream, keys: tuple[str, ...], **options: Any) -> HTTPProvider:
    config = ProviderConfig(name, "openai", f"http://{name}.invalid/v1", keys, **options)
    return HTTPProvider(config, httpx.MockTransport(upstream))


def gateway(
    providers: dict[str, HTTPProvider], outcomes: list[tuple[str, str]], **settings: Any
) -> Gateway:
    """A gateway with alias ``m`` over the providers in order; health on Trio's clock."""
    aliases = {"m": tuple(Target(name, f"{name}-model") for name in providers)}
    config = Config(
        providers={n: p.config for n, p in providers.items()}, aliases=aliases, **settings
    )
    return Gateway(
        config,
        providers,
        on_attempt=lambda name, outcome: outcomes.append((name, outcome)),
        rng=random.Random(7),
        health=lambda name, keys, s: LocalHealth(name, keys, s, clock=trio.current_time),
    )


def call(*, stream: bool = False) -> Call:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return Call("openai", "chat", body, {})


async def serve(gw: Gateway, the_call: Call | None = None) -> Any:
    """One request, its resources closed at once; the reply (or the error raised)."""
    async with AsyncExitStack() as resources:
        return await gw.handle(the_call or call(), resources)


async def test_a_5xx_is_retried_on_the_same_target_after_a_backoff(autojump_clock: object) -> None:
    a = Upstream(status(503), status(502))
    outcomes: list[tuple[str, str]] = []
    gw = gateway({"a": provider("a", a, (KEY_A1,))}, outcomes, retries=2)
    reply = await serve(gw)
    assert orjson.loads(reply.body)["choices"][0]["message"]["content"] == "hi"
    assert outcomes == [("a", "http_503"), ("a", "http_502"), ("a", "ok")]
    assert len(a.requests) == 3


async def test_retries_are_bounded_then_the_next_target_serves(autojump_clock: object) -> None:
    a = Upstream(httpx.ConnectError("refused"), httpx.ConnectError("refused"))
    b = Upstream()
    outcomes: list[tuple[str, str]] = []
    gw = gateway(
        {"a": provider("a", a, (KEY_A1,)), "b": provider("b", b, (KEY_B,))}, outcomes, retries=1
    )
    reply = await serve(gw)
    assert reply.target == Target("b", "b-model")
    assert outcomes == [("a", "unavailable"), ("a", "unavailable"), ("b", "ok")]
    assert orjson.loads(b.requests[0].content)["model"] == "b-model"


async def test_the_last_targets_error_is_answered_with_its_target(autojump_clock: object) -> None:
    a, b = Upstream(status(500)), Upstream(status(503))
    gw = gateway({"a": provider("a", a, (KEY_A1,)), "b": provider("b", b, (KEY_B,))}, [], retries=0)
    with pytest.raises(UpstreamHTTPError) as caught:
        await serve(gw)
    assert caught.value.status == 503
    assert caught.value.headers["x-minillm-target"] == "b:b-model"


async def test_a_client_error_is_neither_retried_nor_failed_over(autojump_clock: object) -> None:
    a, b = Upstream(status(400)), Upstream()
    outcomes: list[tuple[str, str]] = []
    gw = gateway({"a": provider("a", a, (KEY_A1,)), "b": provider("b", b, (KEY_B,))}, outcomes)
    with pytest.raises(UpstreamHTTPError) as caught:
        await serve(gw)
    assert caught.value.status == 400
    assert "upstream says 400" in caught.value.message
    assert outcomes == [("a", "http_400")]
    assert b.requests == []


async def test_retry_after_is_waited_when_it_fits_the_deadline(autojump_clock: object) -> None:
    a = Upstream(status(503, **{"retry-after": "3"}))
    gw = gateway({"a": provider("a", a, (KEY_A1,))}, [], request_timeout=10.0)
    await serve(gw)
    assert a.times[1] - a.times[0] == pytest.approx(3.0)


async def test_retry_after_beyond_the_deadline_fails_over_at_once(autojump_clock: object) -> None:
    a, b = Upstream(status(503, **{"retry-after": "30"})), Upstream()
    gw = gateway(
        {"a": provider("a", a, (KEY_A1,)), "b": provider("b", b, (KEY_B,))},
        [],
        request_timeout=10.0,
    )
    start = trio.current_time()
    reply = await serve(gw)
    assert reply.target.provider == "b"
    assert len(a.requests) == 1
    assert b.times[0] - start == pytest.approx(0.0)


async def test_the_request_deadline_bounds_a_hanging_upstream(autojump_clock: object) -> None:
    async def hang() -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError

    a = Upstream(hang)
    gw = gateway({"a": provider("a", a, (KEY_A1,))}, [], request_timeout=7.0)
    start = trio.current_time()
    with pytest.raises(UpstreamTimeout):
        await serve(gw)
    assert trio.current_time() - start == pytest.approx(7.0)


async def test_the_providers_timeout_bounds_each_attempts_first_byte(
    autojump_clock: object,
) -> None:
    async def slow() -> httpx.Response:
        await trio.sleep(5)
        return ok()

    a, b = Upstream(slow, slow), Upstream()
    outcomes: list[tuple[str, str]] = []
    gw = gateway(
        {"a": provider("a", a, (KEY_A1,), timeout=2.0), "b": provider("b", b, (KEY_B,))},
        outcomes,
        retries=1,
        request_timeout=60.0,
    )
    reply = await serve(gw)
    assert reply.target.provider == "b"
    assert outcomes == [("a", "timeout"), ("a", "timeout"), ("b", "ok")]
    assert a.times[1] - a.times[0] >= 2.0
    assert b.times[0] < 5.0  # neither attempt waited for the slow answer


# -- streams: the first chunk is read before the gateway answers ----------------------


def sse_response(chunks: AsyncIterator[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunks)


async def test_a_stream_whose_first_chunk_is_late_is_timed_out_and_retried(
    autojump_clock: object,
) -> None:
    first = b'data: {"id":"c","object":"chat.completion.chunk","choices":[]}\n\n'

    async def late_body() -> AsyncIterator[bytes]:
        await trio.sleep(10)
        yield first

    async def prompt_body() -> AsyncIterator[bytes]:
        yield first
        await trio.sleep_forever()

    async def late() -> httpx.Response:
        return sse_response(late_body())

    async def prompt() -> httpx.Response:
        return sse_response(prompt_body())

    a = Upstream(late, prompt)
    outcomes: list[tuple[str, str]] = []
    gw = gateway({"a": provider("a", a, (KEY_A1,), timeout=1.0)}, outcomes, retries=1)
    async with AsyncExitStack() as resources:
        reply = await gw.handle(call(stream=True), resources)
        assert isinstance(reply, StreamReply)
        assert reply.first == first
    assert outcomes == [("a", "timeout"), ("a", "ok")]


# -- keys: rests after 429, rejection after 401/403, the panic rule -----------------------


async def test_a_429_moves_to_the_next_key_at_once(autojump_clock: object) -> None:
    a = Upstream(status(429))
    gw = gateway({"a": provider("a", a, (KEY_A1, KEY_A2))}, [])
    start = trio.current_time()
    await serve(gw)
    assert a.keys == [KEY_A1, KEY_A2]
    assert a.times[1] == start
    await serve(gw)  # the resting key is skipped while the other is fine
    assert a.keys[2] == KEY_A2


async def test_a_key_rate_limited_on_the_providers_word_is_not_used(autojump_clock: object) -> None:
    a = Upstream(status(429, **{"retry-after": "20"}))
    gw = gateway({"a": provider("a", a, (KEY_A1,))}, [], request_timeout=10.0)
    with pytest.raises(UpstreamHTTPError) as caught:
        await serve(gw)
    assert caught.value.status == 429
    with pytest.raises(KeysRateLimited) as resting:
        await serve(gw)  # no call: the provider said 20 s
    assert len(a.requests) == 1
    assert resting.value.headers["retry-after"] == "20"
    await trio.sleep(20)
    await serve(gw)
    assert len(a.requests) == 2


async def test_a_rejected_key_is_skipped_while_another_target_is_left(
    autojump_clock: object,
) -> None:
    a, b = Upstream(status(401)), Upstream()
    outcomes: list[tuple[str, str]] = []
    gw = gateway({"a": provider("a", a, (KEY_A1,)), "b": provider("b", b, (KEY_B,))}, outcomes)
    await serve(gw)
    assert outcomes == [("a", "http_401"), ("b", "ok")]
    outcomes.clear()
    await serve(gw)
    assert outcomes == [("a", "skipped_keys"), ("b", "ok")]
    assert len(a.requests) == 1


async def test_a_rejected_key_is_still_used_when_nothing_else_is_left(
    autojump_clock: object,
) -> None:
    """Envoy's panic threshold: a guess or a rejection never walls off the last key."""
    a = Upstream(status(403), status(403))
    gw = gateway({"a": provider("a", a, (KEY_A1,))}, [])
    for _ in range(2):
        with pytest.raises(UpstreamHTTPError) as caught:
            await serve(gw)
        assert caught.value.status == 403
    assert len(a.requests) == 2  # one call each: the gateway does not retry the same key
    await serve(gw)


# -- the breaker --------------------------------------------------------------------------


async def test_the_breaker_opens_after_failures_and_lets_a_probe_through(
    autojump_clock: object,
) -> None:
    down = httpx.ConnectError("refused")
    a = Upstream(down, down)
    outcomes: list[tuple[str, str]] = []
    gw = gateway(
        {"a": provider("a", a, (KEY_A1,))},
        outcomes,
        retries=2,
        breaker_failures=2,
        breaker_cooldown=30.0,
    )
    with pytest.raises(GatewayError) as caught:
        await serve(gw)
    assert caught.value.status == 502  # the last real failure, not the breaker
    assert outcomes == [("a", "unavailable"), ("a", "unavailable"), ("a", "skipped_breaker")]
    with pytest.raises(CircuitOpen) as open_:
        await serve(gw)
    assert open_.value.status == 503
    assert int(open_.value.headers["retry-after"]) <= 30
    assert len(a.requests) == 2
    assert (await gw.provider_health())["a"]["breaker"] == "open"
    await trio.sleep(30)
    await serve(gw)  # the half-open breaker lets one probe through; it succeeds
    assert (await gw.provider_health())["a"]["breaker"] == "closed"


# -- slots ------------------------------------------------------------------------------


async def test_the_winner_keeps_its_slot_until_the_request_ends(autojump_clock: object) -> None:
    a = Upstream()
    outcomes: list[tuple[str, str]] = []
    gw = gateway({"a": provider("a", a, (KEY_A1,), max_in_flight=1)}, outcomes, queue_timeout=1.0)
    async with AsyncExitStack() as first:
        await gw.handle(call(), first)
        assert (await gw.provider_health())["a"]["in_flight"] == 1
        with pytest.raises(Overloaded):
            await serve(gw)
        assert outcomes[-1] == ("a", "skipped_busy")
    assert (await gw.provider_health())["a"]["in_flight"] == 0
    await serve(gw)
    assert outcomes[-1] == ("a", "ok")


async def test_a_failed_attempt_releases_its_slot_at_once(autojump_clock: object) -> None:
    a, b = Upstream(status(500)), Upstream()
    outcomes: list[tuple[str, str]] = []
    gw = gateway(
        {"a": provider("a", a, (KEY_A1,), max_in_flight=1), "b": provider("b", b, (KEY_B,))},
        outcomes,
        retries=0,
    )
    async with AsyncExitStack() as first:
        reply = await gw.handle(call(), first)
        assert reply.target.provider == "b"  # b's slot is held; a's was given back
        health = await gw.provider_health()
        assert (health["a"]["in_flight"], health["b"]["in_flight"]) == (0, 1)
        second = await serve(gw)
        assert second.target.provider == "a"
    assert ("a", "skipped_busy") not in outcomes


async def test_admission_is_bounded_by_max_in_flight(autojump_clock: object) -> None:
    gw = gateway(
        {"a": provider("a", Upstream(), (KEY_A1,))}, [], max_in_flight=1, queue_timeout=2.0
    )
    async with AsyncExitStack() as first:
        await gw.handle(call(), first)
        start = trio.current_time()
        with pytest.raises(Overloaded) as caught:
            await serve(gw)
        assert trio.current_time() - start == pytest.approx(2.0)
        assert caught.value.headers["retry-after"] == "1"


async def test_no_queue_timeout_admits_at_once_while_under_the_limit(
    autojump_clock: object,
) -> None:
    """``queue_timeout = 0``: no waiting over the limit, but no refusal under it."""
    gw = gateway(
        {"a": provider("a", Upstream(), (KEY_A1,))}, [], max_in_flight=1, queue_timeout=0.0
    )
    async with AsyncExitStack() as first:
        await gw.handle(call(), first)
        with pytest.raises(Overloaded):
            await serve(gw)
    await serve(gw)


# -- what reaches the client -------------------------------------------------------------


async def test_provider_keys_never_reach_the_error_message(autojump_clock: object) -> None:
    leaky = httpx.Response(
        400, json={"error": {"message": f"Incorrect API key provided: {KEY_A1}", "type": "x"}}
    )
    gw = gateway({"a": provider("a", Upstream(leaky), (KEY_A1,))}, [])
    with pytest.raises(UpstreamHTTPError) as caught:
        await serve(gw)
    assert KEY_A1 not in caught.value.message
    assert KEY_A1 not in str(caught.value.original)


async def test_a_cross_format_call_is_translated_both_ways(autojump_clock: object) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "bonjour"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    seen: list[httpx.Request] = []

    async def anthropic(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=message)

    config = ProviderConfig("c", "anthropic", "http://c.invalid", (KEY_B,))
    gw = gateway({"c": HTTPProvider(config, httpx.MockTransport(anthropic))}, [])
    reply = await serve(gw)
    assert seen[0].url.path == "/v1/messages"
    assert seen[0].headers["x-api-key"] == KEY_B
    assert orjson.loads(seen[0].content)["max_tokens"] > 0
    body = orjson.loads(reply.body)
    assert body["choices"][0]["message"]["content"] == "bonjour"
    assert body["usage"]["prompt_tokens"] == 3
