"""A fake OpenAI + Anthropic provider that is never the bottleneck.

A raw asyncio ``Protocol`` server on 127.0.0.1: no HTTP framework, no JSON at
request time. Every answer is pre-encoded at start-up and chosen by looking at
the request path and a few bytes of the body:

* ``POST /v1/chat/completions``: OpenAI chat completion, or SSE when ``"stream":true``.
* ``POST /v1/messages``: Anthropic message, or SSE when ``"stream":true``.
* a model name ending in ``-long`` streams ~8000 chunks (the slow-reader memory test),
  written with flow control so the provider itself stays small.
* a model name ending in ``-paced`` streams ~6 KB of SSE at ~1000 B/s (one event every
  ~0.18 s, about 6 s in all): the long-stream scenario.
* ``GET /health``: 200.

Run it alone with ``python -m bench.fake_provider --port 9001``; it prints
``fake provider listening on http://127.0.0.1:PORT`` once accepting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from bench import payloads as p

_JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_HEALTH = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
_LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
_MAX_HEAD = 64 * 1024
_WRITE_SLICE = 64 * 1024


def _json(body: bytes) -> bytes:
    return _JSON_HEAD % len(body) + body


def _chunks(events: list[bytes]) -> list[bytes]:
    """One HTTP chunk per event; the last one carries the terminating chunk."""
    chunks = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    chunks[0] = _SSE_HEAD + chunks[0]
    chunks[-1] += b"0\r\n\r\n"
    return chunks


def _sse(events: list[bytes]) -> bytes:
    return b"".join(_chunks(events))


# path -> the pieces of a paced answer, written one every _PACE_S
_PACED: dict[bytes, list[bytes]] = {
    b"/v1/chat/completions": _chunks(p.openai_events(p.PACED_CHUNKS)),
    b"/v1/messages": _chunks(p.anthropic_events(p.PACED_CHUNKS)),
}
_PACE_S = p.PACED_SECONDS / len(_PACED[b"/v1/chat/completions"])

# (path, stream, long) -> complete pre-encoded response
_ANSWERS: dict[tuple[bytes, bool, bool], bytes] = {
    (b"/v1/chat/completions", False, False): _json(p.openai_body()),
    (b"/v1/chat/completions", True, False): _sse(p.openai_events(p.STREAM_CHUNKS)),
    (b"/v1/chat/completions", True, True): _sse(p.openai_events(p.LONG_STREAM_CHUNKS)),
    (b"/v1/messages", False, False): _json(p.anthropic_body()),
    (b"/v1/messages", True, False): _sse(p.anthropic_events(p.STREAM_CHUNKS)),
    (b"/v1/messages", True, True): _sse(p.anthropic_events(p.LONG_STREAM_CHUNKS)),
}
_ANSWERS[(b"/v1/chat/completions", False, True)] = _ANSWERS[(b"/v1/chat/completions", False, False)]
_ANSWERS[(b"/v1/messages", False, True)] = _ANSWERS[(b"/v1/messages", False, False)]


def answer_for(method: bytes, path: bytes, body: bytes) -> bytes | list[bytes]:
    """The whole answer, or for a paced stream its pieces, to be written one at a time."""
    if method == b"GET" and path == b"/health":
        return _HEALTH
    path = path.split(b"?", 1)[0]
    stream = b'"stream":true' in body or b'"stream": true' in body
    if stream and p.PACED_SUFFIX.encode() + b'"' in body and path in _PACED:
        return _PACED[path]
    long = p.LONG_SUFFIX.encode() + b'"' in body
    return _ANSWERS.get((path, stream, long), _NOT_FOUND)


class _Server(asyncio.Protocol):
    def __init__(self) -> None:
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._pending: memoryview | None = None  # the rest of a large answer
        self._paced: list[bytes] | None = None  # a paced answer being written
        self._piece = 0
        self._tick: asyncio.TimerHandle | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._pending = None
        if self._tick is not None:
            self._tick.cancel()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._drain()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._pending is None and self._paced is None:
            self._serve()

    def _serve(self) -> None:
        """Answer every complete request in the buffer (pipelining allowed)."""
        buf = self._buf
        while self._transport is not None and self._pending is None and self._paced is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._transport.close()
                return
            head = bytes(buf[:end]).lower()
            length = 0
            if (i := head.find(b"\ncontent-length:")) >= 0:
                eol = head.find(b"\r", i + 1)
                length = int(head[i + 16 : eol if eol > 0 else len(head)])
            elif b"\ntransfer-encoding:" in head:
                self._transport.write(_LENGTH_REQUIRED)
                self._transport.close()
                return
            if len(buf) < end + 4 + length:
                return
            method, path = head.split(b" ", 2)[:2]
            body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            answer = answer_for(method.upper(), path, body)
            if isinstance(answer, list):
                self._paced, self._piece = answer, 0
                self._next_piece()
            elif len(answer) <= _WRITE_SLICE:
                self._transport.write(answer)
            else:
                self._pending = memoryview(answer)
                self._drain()

    def _next_piece(self) -> None:
        """Write the next piece of a paced answer; schedule the one after."""
        assert self._paced is not None
        self._tick = None
        if self._transport is None:
            return
        self._transport.write(self._paced[self._piece])
        self._piece += 1
        if self._piece < len(self._paced):
            self._tick = asyncio.get_running_loop().call_later(_PACE_S, self._next_piece)
            return
        self._paced = None
        if self._buf:
            self._serve()

    def _drain(self) -> None:
        while self._pending is not None and not self._paused and self._transport is not None:
            self._transport.write(self._pending[:_WRITE_SLICE])
            self._pending = self._pending[_WRITE_SLICE:] or None
        if self._pending is None and self._buf:
            self._serve()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Server, host, port, backlog=1024, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"fake provider listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
