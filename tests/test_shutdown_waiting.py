"""SIGTERM while requests still wait for their upstream's first byte: each gets a 503 in
its client's format before the grace runs out, not a cut connection."""

from __future__ import annotations

import signal

import httpx
import trio

from gateway_fixtures import gateway_env
from processes import serving
from test_hardening import assert_anthropic_error, assert_openai_error
from upstream import FakeUpstream, Hang, Silent

MSG = [{"role": "user", "content": "hi"}]


async def test_sigterm_answers_requests_waiting_on_the_upstream(upstream: FakeUpstream) -> None:
    upstream.push(Hang(), Hang(), Silent())
    env = gateway_env(upstream.url, MINI_LLM_SHUTDOWN_GRACE="3", MINI_LLM_USAGE_DB="off")
    calls = [
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSG}),
        ("/v1/messages", {"model": "claude-x", "max_tokens": 5, "messages": MSG}),
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSG, "stream": True}),
    ]
    answers: list[tuple[str, httpx.Response, float]] = []
    async with serving(env) as served, httpx.AsyncClient(timeout=10) as client:

        async def call(path: str, body: dict[str, object]) -> None:
            r = await client.post(served.url + path, json=body)
            answers.append((path, r, trio.current_time()))

        async with trio.open_nursery() as nursery:
            for path, body in calls:
                nursery.start_soon(call, path, body)
            with trio.fail_after(5):
                while len(upstream.requests) < len(calls):
                    await trio.sleep(0.02)
            served.process.send_signal(signal.SIGTERM)
            signalled = trio.current_time()
        with trio.fail_after(5):
            assert await served.process.wait() == 0
    assert len(answers) == 3
    for path, r, at in answers:
        assert at - signalled < 3  # within the grace
        if path == "/v1/messages":
            error = assert_anthropic_error(r, 503)
        else:
            error = assert_openai_error(r, 503)
        assert "shutting down" in error["message"]
    log = served.stderr.decode()
    assert log.count(" 503 model=") == 3, log
    assert "Traceback" not in log
