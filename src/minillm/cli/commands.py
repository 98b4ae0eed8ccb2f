"""The client side of the ``minillm`` CLI: ``health``, ``models``, ``chat``.

They talk to a running gateway with a plain (sync) httpx client; every failure
becomes a :class:`CommandError` that ``main`` prints as one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import orjson

from minillm.core.dialects import ClientAPI
from minillm.core.errors import GatewayError
from minillm.core.sse import SSEDecoder, SSEEvent
from minillm.sdk import DEFAULT_PORT

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "ChatCall",
    "ChatRequest",
    "CommandError",
    "gateway_url",
    "run_chat",
    "run_health",
    "run_models",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A command failed; ``main`` prints the message and exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def gateway_url(arg: str | None) -> str:
    """``arg``, else ``MINI_LLM_URL``, else ``http://127.0.0.1:$MINI_LLM_PORT|3333``."""
    port = os.environ.get("MINI_LLM_PORT") or DEFAULT_PORT
    url = arg or os.environ.get("MINI_LLM_URL") or f"http://127.0.0.1:{port}"
    url = url.rstrip("/").removesuffix("/v1")  # an SDK base URL works too
    return url if "://" in url else f"http://{url}"


def http_client(timeout: float, api_key: str | None = None) -> httpx.Client:
    """A client for the gateway, presenting ``api_key`` (default ``MINI_LLM_API_KEY``)
    when the gateway requires keys."""
    key = api_key or os.environ.get("MINI_LLM_API_KEY")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), headers=headers)


@contextmanager
def reaching(url: str) -> Iterator[None]:
    """Map transport failures to one-line :class:`CommandError` messages."""
    try:
        yield
    except httpx.InvalidURL as exc:
        raise CommandError(f"invalid gateway URL {url!r}: {exc}", EXIT_USAGE) from None
    except httpx.ConnectError:
        raise CommandError(f"cannot reach the gateway at {url} (is it running?)") from None
    except httpx.TimeoutException:
        raise CommandError(f"the gateway at {url} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise CommandError(f"request to {url} failed: {exc}") from None
    except GatewayError as exc:  # e.g. an SSE line too long
        raise CommandError(f"bad answer from {url}: {exc.message}") from None


def _dig(value: object, *path: str | int) -> object:
    """``value[path[0]][path[1]]…`` through dicts and lists, or None."""
    for step in path:
        if isinstance(step, int):
            value = (
                value[step]
                if isinstance(value, list) and -len(value) <= step < len(value)
                else None
            )
        else:
            value = value.get(step) if isinstance(value, dict) else None
    return value


def _json(raw: bytes | str) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def api_error(response: httpx.Response) -> CommandError:
    """The gateway's error answer as a one-line error (its message, not the body)."""
    message = _dig(_json(response.read()), "error", "message")
    text = message if isinstance(message, str) else response.reason_phrase
    return CommandError(f"gateway error (HTTP {response.status_code}): {text}")


def run_health(args: argparse.Namespace) -> int:
    url = gateway_url(args.url)
    with reaching(url), http_client(args.timeout) as client:
        started = time.perf_counter()
        response = client.get(f"{url}/health")
        elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or _json(response.content) != {"status": "ok"}:
        raise CommandError(f"the gateway at {url} is not healthy (HTTP {response.status_code})")
    print(f"ok  {url}  ({elapsed:.0f} ms)")
    if args.providers:
        with reaching(url), http_client(args.timeout, args.api_key) as client:
            response = client.get(f"{url}/health/providers")
            if response.status_code != 200:
                raise api_error(response)
        print("\n".join(provider_lines(response.content)))
    return EXIT_OK


def provider_lines(body: bytes) -> list[str]:
    """One line per provider of ``/health/providers``: keys, breaker, in-flight."""
    providers = _dig(_json(body), "providers")
    lines = []
    for name, health in sorted(providers.items()) if isinstance(providers, dict) else []:
        cooling = _dig(health, "keys_cooling")
        masked = ", ".join(map(str, cooling)) if isinstance(cooling, list) and cooling else "-"
        lines.append(
            f"{name:<12} keys available {_dig(health, 'keys_available')}  cooling {masked}"
            f"  breaker {_dig(health, 'breaker')}  in flight {_dig(health, 'in_flight')}"
        )
    return lines


def run_models(args: argparse.Namespace) -> int:
    url = gateway_url(args.url)
    with reaching(url), http_client(args.timeout, args.api_key) as client:
        response = client.get(f"{url}/v1/models")
        if response.status_code != 200:
            raise api_error(response)
    if args.json:
        print(response.text)
        return EXIT_OK
    print("\n".join(model_lines(response.content)))
    return EXIT_OK


def model_lines(body: bytes) -> list[str]:
    """``id  target, target`` per model of an OpenAI-format model list."""
    models = _dig(_json(body), "data")
    rows: list[tuple[str, str]] = []
    for model in models if isinstance(models, list) else []:
        targets = _dig(model, "targets")
        listed = [str(t) for t in targets] if isinstance(targets, list) else []
        rows.append((str(_dig(model, "id")), ", ".join(listed)))
    if not rows:
        return ["no model aliases configured: any model name is routed by its name"]
    width = max(len(name) for name, _ in rows)
    return [f"{name:<{width}}  -> {targets}" if targets else name for name, targets in rows]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One user prompt, in the format of one of the gateway's client APIs."""

    format: ClientAPI
    model: str
    prompt: str
    system: str | None = None
    max_tokens: int | None = None
    stream: bool = True

    @property
    def path(self) -> str:
        return _APIS[self.format].path

    def body(self) -> dict[str, object]:
        user = {"role": "user", "content": self.prompt}
        body: dict[str, object] = {"model": self.model, "stream": self.stream}
        if self.format == "responses":
            body["input"] = [user]
            body.update(instructions=self.system, max_output_tokens=self.max_tokens)
            return {k: v for k, v in body.items() if v is not None}
        if self.format == "anthropic":
            body.update(messages=[user], max_tokens=self.max_tokens or 1024)
            if self.system:
                body["system"] = self.system
            return body
        system = [{"role": "system", "content": self.system}] if self.system else []
        body["messages"] = [*system, user]
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        return body


def _texts(blocks: object, kind: str, *inner: str) -> str:
    """The joined ``text`` of the blocks of type ``kind`` in a list; with ``inner``
    (a key and a kind), of the blocks of that kind in each block's list at that key."""
    found = [b for b in blocks if _dig(b, "type") == kind] if isinstance(blocks, list) else []
    if inner:
        return "".join(_texts(_dig(b, inner[0]), *inner[1:]) for b in found)
    parts = [_dig(b, "text") for b in found]
    return "".join(p for p in parts if isinstance(p, str))


def _event_text(data: object, kind: str, *path: str) -> object:
    return _dig(data, *path) if _dig(data, "type") == kind else None


@dataclass(frozen=True, slots=True)
class _API:
    """Where a client API puts what ``minillm chat`` prints."""

    path: str
    usage: tuple[str, str]  # input and output token keys of ``usage``
    text: Callable[[object], object]  # the reply text of a plain answer
    delta: Callable[[object], object]  # the text of one stream event


_APIS: Mapping[ClientAPI, _API] = {
    "openai": _API(
        "/v1/chat/completions",
        ("prompt_tokens", "completion_tokens"),
        lambda reply: _dig(reply, "choices", 0, "message", "content"),
        lambda data: _dig(data, "choices", 0, "delta", "content"),
    ),
    "anthropic": _API(
        "/v1/messages",
        ("input_tokens", "output_tokens"),
        lambda reply: _texts(_dig(reply, "content"), "text"),
        lambda data: _event_text(data, "content_block_delta", "delta", "text"),
    ),
    "responses": _API(
        "/v1/responses",
        ("input_tokens", "output_tokens"),
        lambda reply: _texts(_dig(reply, "output"), "message", "content", "output_text"),
        lambda data: _event_text(data, "response.output_text.delta", "delta"),
    ),
}


class ChatCall:
    """Iterate to send ``request`` and get the reply text (deltas when streaming).

    After the answer starts, ``target`` is the ``provider:model`` that served
    it; after a plain (non-streamed) reply, ``usage`` is (input, output) tokens.
    """

    def __init__(self, client: httpx.Client, url: str, request: ChatRequest) -> None:
        self._client, self._url, self.request = client, url, request
        self.target = "?"
        self.usage: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[str]:
        request = self.request
        with (
            reaching(self._url),
            self._client.stream("POST", self._url + request.path, json=request.body()) as response,
        ):
            if response.status_code != 200:
                raise api_error(response)
            self.target = response.headers.get("x-minillm-target", "?")
            if request.stream:
                decoder = SSEDecoder()
                for chunk in response.iter_bytes():
                    yield from _deltas(request.format, decoder.feed(chunk))
                yield from _deltas(request.format, decoder.close())
            else:
                yield self._reply_text(_json(response.read()))

    def _reply_text(self, reply: object) -> str:
        api = _APIS[self.request.format]
        usage = (_dig(reply, "usage", api.usage[0]), _dig(reply, "usage", api.usage[1]))
        text = api.text(reply)
        if isinstance(usage[0], int) and isinstance(usage[1], int):
            self.usage = (usage[0], usage[1])
        return text if isinstance(text, str) else ""


def _deltas(fmt: ClientAPI, events: Iterable[SSEEvent]) -> Iterator[str]:
    for event in events:
        if event.data == "[DONE]":
            continue
        data = _json(event.data)
        if isinstance(_dig(data, "error"), dict) or _dig(data, "type") == "error":
            message = _dig(data, "error", "message") or _dig(data, "message")
            raise CommandError(f"gateway error mid-stream: {message}")
        text = _APIS[fmt].delta(data)
        if isinstance(text, str) and text:
            yield text


def run_chat(args: argparse.Namespace) -> int:
    prompt = args.prompt
    if prompt is None or prompt == "-":
        if prompt is None and sys.stdin.isatty():
            raise CommandError("no prompt: give one as an argument or on stdin", EXIT_USAGE)
        prompt = sys.stdin.read()
    request = ChatRequest(
        args.format, args.model, prompt, args.system, args.max_tokens, stream=not args.no_stream
    )
    url = gateway_url(args.url)
    out = sys.stdout
    wrote = False
    with http_client(args.timeout, args.api_key) as client:
        call = ChatCall(client, url, request)
        try:
            for text in call:
                out.write(text)
                out.flush()
                wrote = True
        except BaseException:
            if wrote:  # end the partial reply's line before the error message
                print(flush=True)
            raise
    print(flush=True)
    if args.verbose:
        print(f"[{call.target}]", file=sys.stderr)
    return EXIT_OK
