"""``minillm demo``: start a gateway, take a short tour of it, stop it.

With no provider keys the built-in ``mock`` provider answers every model, so
the tour needs no network; with keys it calls the real providers (small
``max_tokens``).  The gateway runs as a background process via
:func:`minillm.start`, the way a non-Trio app would use it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from minillm.cli.commands import (
    EXIT_FAILURE,
    EXIT_OK,
    ChatCall,
    ChatRequest,
    CommandError,
    gateway_url,
    http_client,
    model_lines,
    reaching,
)
from minillm.core.config import Config
from minillm.sdk import GatewayProcess, start

__all__ = ["run_demo"]

_MAX_TOKENS = 60
_WIDTH = 24
_FORMAT_NAME = {
    "openai": "OpenAI Chat Completions",
    "anthropic": "Anthropic Messages",
    "responses": "OpenAI Responses",
}


@dataclass(frozen=True, slots=True)
class _Tour:
    mode: str
    calls: tuple[tuple[str, ChatRequest], ...]


def _tour(config: Config, openai_model: str, anthropic_model: str) -> _Tour:
    usable = {n for n, p in config.providers.items() if p.keys and n in ("openai", "anthropic")}
    if config.offline:
        mode = "offline: no provider keys are set, so the built-in mock answers every model"
        chat_model, message_model = openai_model, anthropic_model
        cross = ChatRequest("anthropic", openai_model, "Translate me, please.")
    else:
        fallback = "mock:mock-1"  # a provider prefix routes explicitly, keys or not
        mode = "online: calling " + (" and ".join(sorted(usable)) or "the mock provider")
        chat_model = openai_model if "openai" in usable else anthropic_model
        chat_model = chat_model if usable else fallback
        message_model = anthropic_model if "anthropic" in usable else chat_model
        if "openai" in usable:
            cross = ChatRequest("anthropic", openai_model, "Say hi to an Anthropic client.")
        elif usable:
            cross = ChatRequest("openai", anthropic_model, "Say hi to an OpenAI client.")
        else:
            cross = ChatRequest("anthropic", fallback, "Translate me, please.")
    n = _MAX_TOKENS
    return _Tour(
        mode,
        (
            (
                "OpenAI format, streamed",
                ChatRequest("openai", chat_model, "Stream a haiku.", None, n),
            ),
            (
                "OpenAI format, plain",
                ChatRequest("openai", chat_model, "Name one planet.", None, n, stream=False),
            ),
            (
                "Anthropic format, plain",
                ChatRequest("anthropic", message_model, "Name one ocean.", None, n, stream=False),
            ),
            (
                "Cross-format, streamed",
                ChatRequest(cross.format, cross.model, cross.prompt, None, n),
            ),
            (
                "Responses API, streamed",
                ChatRequest("responses", chat_model, "Name one river.", None, n),
            ),
        ),
    )


def run_demo(args: argparse.Namespace) -> int:
    config = Config.load(config_file=args.config)  # a bad config fails here, exit 2
    tour = _tour(config, args.openai_model, args.anthropic_model)
    env = {"MINI_LLM_LOG_LEVEL": "warning", "MINI_LLM_USAGE_DB": "off"}  # no demo usage
    if "MINI_LLM_MOCK_DELAY" not in os.environ:
        env["MINI_LLM_MOCK_DELAY"] = "0.01"
    if config.offline and not config.aliases:
        env["MINI_LLM_MODEL_ALIASES"] = '{"fast": ["mock:mock-1"]}'
    if args.config:
        env["MINI_LLM_CONFIG"] = args.config
    print(f"minillm demo ({tour.mode})")
    with start(port=0, env=env, timeout=args.timeout) as gateway:
        print(f"gateway started at {gateway.url} (pid {gateway.pid})\n")
        failed = _run_tour(gateway, config, tour, args.timeout)
        default = gateway_url(None)
        print("Use it from your own code:")
        print("  minillm serve                    # then, in another terminal:")
        print('  minillm chat "Hello"')
        print(f'  OpenAI SDK:    base_url="{default}/v1"')
        print(f'  Anthropic SDK: base_url="{default}/anthropic"')
        print("  Python:        gw = minillm.start(); client = gw.openai_client()")
    print("\ngateway stopped." + (f" {failed} step(s) failed." if failed else ""))
    return EXIT_FAILURE if failed else EXIT_OK


def _run_tour(gateway: GatewayProcess, config: Config, tour: _Tour, timeout: float) -> int:
    url = gateway.url
    failed = 0
    with http_client(timeout) as client:

        def health() -> None:
            with reaching(url):
                started = time.perf_counter()
                answer = client.get(f"{url}/health").content
            print(f"   {answer.decode()} in {(time.perf_counter() - started) * 1000:.0f} ms")

        def models() -> None:
            with reaching(url):
                body = client.get(f"{url}/v1/models").content
            for line in model_lines(body):
                print(f"   {line}")

        def chat(request: ChatRequest) -> Callable[[], None]:
            return lambda: _chat(ChatCall(client, url, request), config)

        steps: list[tuple[str, Callable[[], None]]] = [
            (f"{'Health check':<{_WIDTH}} GET /health", health),
            (f"{'Models and aliases':<{_WIDTH}} GET /v1/models", models),
        ]
        for title, request in tour.calls:
            steps.append(
                (f"{title:<{_WIDTH}} POST {request.path}  model={request.model}", chat(request))
            )
        for number, (title, step) in enumerate(steps, 1):
            print(f"{number}. {title}")
            try:
                step()
            except CommandError as exc:
                failed += 1
                print(f"   FAILED: {exc}")
            print()
    return failed


def _chat(call: ChatCall, config: Config) -> None:
    out = sys.stdout
    texts = iter(call)
    first = next(texts, None)  # an error before the answer starts prints no reply line
    if first is not None:
        out.write("   " + first.replace("\n", "\n   "))
        try:
            for text in texts:
                out.write(text.replace("\n", "\n   "))
                out.flush()
        finally:
            out.write("\n")
    usage = f" ({call.usage[0]} tokens in, {call.usage[1]} out)" if call.usage else ""
    out.write(f"   served by {call.target}{_translation(call, config)}{usage}\n")


def _translation(call: ChatCall, config: Config) -> str:
    provider = config.providers.get(call.target.partition(":")[0])
    if provider is None:
        return ""
    asked = call.request.format
    if provider.serves(asked):
        return ""
    return f", translated {_FORMAT_NAME[asked]} -> {_FORMAT_NAME[provider.format]} and back"
