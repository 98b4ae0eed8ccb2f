"""Start the real gateway (Hypercorn, trio worker) in the test's nursery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import pytest
import trio

from minillm.core.config import Config
from minillm.server.serve import bind_socket, serve

OPENAI_KEY = "sk-test-openai-key-0001"
ANTHROPIC_KEY = "sk-ant-test-key-0002"


def gateway_env(upstream_url: str, **extra: str) -> dict[str, str]:
    """Environment pointing both vendor providers at the fake upstream."""
    return {
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "MINI_LLM_OPENAI_BASE_URL": f"{upstream_url}/v1",
        "MINI_LLM_ANTHROPIC_BASE_URL": upstream_url,
        **extra,
    }


StartGateway = Callable[..., Awaitable[str]]


@pytest.fixture
def start_gateway(nursery: trio.Nursery) -> StartGateway:
    """``url = await start_gateway(env, **config_overrides)``; stopped with the test."""

    async def start(env: Mapping[str, str], **overrides: Any) -> str:
        config = Config.load(env, **overrides)
        sock = bind_socket("127.0.0.1", 0)
        url: str = await nursery.start(partial(serve, config, sock=sock, handle_signals=False))
        return url

    return start
