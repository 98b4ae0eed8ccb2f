"""Same-format streams: bytes forwarded event-aligned; usage picked out cheaply."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm.core.errors import GatewayError
from minillm.core.translate.passthrough import PassthroughStream, ResponsesPassthroughStream


def chunk(delta: dict[str, object], usage: object = None, choices: bool = True) -> bytes:
    body = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}] if choices else [],
        "usage": usage,
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


STREAM = (
    chunk({"role": "assistant", "content": ""})
    + chunk({"content": "Hello"})
    + chunk({"content": " world"})
    + chunk(
        {}, usage={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}, choices=False
    )
    + b"data: [DONE]\n\n"
)


def run(pieces: list[bytes], *, drop: bool) -> tuple[bytes, PassthroughStream]:
    stream = PassthroughStream(drop_usage_chunk=drop)
    out = b"".join(stream.feed(p) for p in pieces) + stream.close()
    return out, stream


@settings(max_examples=60)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_forwards_whole_events_and_counts_usage(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    pieces = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    out, stream = run(pieces, drop=False)
    assert out == STREAM
    assert (stream.input_tokens, stream.output_tokens) == (7, 2)
    dropped, stream = run(pieces, drop=True)
    assert dropped == STREAM.replace(STREAM.split(b"\n\n")[3] + b"\n\n", b"")
    assert (stream.input_tokens, stream.output_tokens) == (7, 2)


def test_null_usage_fields_are_not_parsed() -> None:
    stream = PassthroughStream()
    assert stream.feed(chunk({"content": "x"}, usage=None)) == chunk({"content": "x"})
    assert stream.input_tokens is None


def test_unterminated_last_event_is_flushed() -> None:
    stream = PassthroughStream()
    assert stream.feed(b"data: [DONE]") == b""
    assert stream.close() == b"data: [DONE]\n\n"


def test_upstream_error_events_are_forwarded_and_noted() -> None:
    words = chunk({"content": "error"})  # the word in content is no error event
    openai_error = b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'
    stream = PassthroughStream()
    assert stream.feed(words) == words and stream.error is None
    assert stream.feed(openai_error[:20]) + stream.feed(openai_error[20:]) == openai_error
    assert stream.error is not None
    assert (stream.error.status, stream.error.message) == (502, "boom")

    anthropic_error = (
        b"event: error\r\n"
        b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    )
    stream = PassthroughStream()
    assert stream.feed(anthropic_error) == b""
    assert stream.close() == anthropic_error + b"\n\n"  # an unterminated last event too
    assert stream.error is not None and stream.error.kind == "overloaded_error"


def test_responses_usage_comes_from_response_completed() -> None:
    usage = {
        "input_tokens": 120, "input_tokens_details": {"cached_tokens": 100},
        "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 129,
    }  # fmt: skip
    events = [
        {"type": "response.created", "response": {"id": "r", "usage": None}},
        {"type": "response.output_text.delta", "delta": '"usage": {"input_tokens": 1}'},
        {"type": "response.completed", "response": {"id": "r", "usage": usage}},
    ]
    sse = b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )
    out, stream = run([sse], drop=False)
    assert out == sse
    assert (stream.tokens.input, stream.tokens.output, stream.tokens.cache_read) == (120, 9, 100)


def test_openai_stream_cut_short_gets_an_error_event() -> None:
    finished = chunk({}).replace(b'"finish_reason":null', b'"finish_reason":"stop"')
    sly = chunk({"content": '"finish_reason":"stop"'})  # the words in content finish nothing
    no_done = STREAM.removesuffix(b"data: [DONE]\n\n")
    for body, cut in [(STREAM, False), (no_done + finished, False), (no_done + sly, True)]:
        stream = PassthroughStream(fmt="openai")
        out = stream.feed(body) + stream.close()
        assert out.startswith(body) and (stream.error is not None) is cut
        if cut:
            error = orjson.loads(out.removeprefix(body).removeprefix(b"data: "))
            assert error["error"]["message"] == "Provider stream ended before it finished"


def test_anthropic_stream_cut_short_gets_an_error_event() -> None:
    start = b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    stream = PassthroughStream(fmt="anthropic")
    assert stream.feed(start + stop) == start + stop and stream.close() == b""
    assert stream.error is None
    stream = PassthroughStream(fmt="anthropic")
    assert stream.feed(start) == start
    assert stream.close().startswith(b"event: error\ndata: ")
    assert stream.error is not None and stream.error.status == 502


def responses_events(*kinds: str) -> bytes:
    return b"".join(
        b"event: " + kind.encode() + b"\ndata: "
        + orjson.dumps({"type": kind, "sequence_number": n}) + b"\n\n"
        for n, kind in enumerate(kinds)
    )  # fmt: skip


def test_a_responses_stream_cut_short_ends_with_a_numbered_error() -> None:
    cut = responses_events("response.created", "response.output_text.delta")
    stream = ResponsesPassthroughStream()
    assert stream.feed(cut) == cut
    tail = stream.close()
    assert stream.error is not None and stream.error.status == 502
    event = orjson.loads(tail.split(b"data: ", 1)[1])
    assert (event["type"], event["sequence_number"]) == ("error", 2)
    assert orjson.loads(stream.fail(GatewayError()).split(b"data: ", 1)[1])["sequence_number"] == 2


@pytest.mark.parametrize("last", ["response.completed", "response.incomplete", "response.failed"])
def test_a_finished_responses_stream_passes_through_untouched(last: str) -> None:
    whole = responses_events("response.created", "response.output_text.delta", last)
    stream = ResponsesPassthroughStream()
    assert stream.feed(whole[:7]) + stream.feed(whole[7:]) + stream.close() == whole
    assert stream.error is None
