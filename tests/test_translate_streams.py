"""Stream translators, checked against the official SDKs' own stream parsing.

The SDK clients talk to an ``httpx2.MockTransport`` that answers with the
translator's output, so no network is involved.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pydantic
import pytest
from anthropic.types import RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk

from minillm.core.errors import Overloaded, UpstreamProtocolError
from minillm.core.sse import SSEDecoder
from minillm.core.translate.streams import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    StreamTranslator,
    stream_error,
)

# --- helpers -------------------------------------------------------------------------


def anthropic_sse(events: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


def openai_sse(chunks: Iterable[dict[str, Any]], done: bool = True) -> bytes:
    out = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def run(translator: StreamTranslator, chunks: Iterable[bytes]) -> bytes:
    return b"".join(translator.feed(c) for c in chunks) + translator.close()


def a2o(
    chunks: Iterable[bytes], include_usage: bool = True
) -> tuple[AnthropicToOpenAIStream, bytes]:
    t = AnthropicToOpenAIStream(model="client-model", include_usage=include_usage, created=7)
    return t, run(t, chunks)


def o2a(chunks: Iterable[bytes]) -> tuple[OpenAIToAnthropicStream, bytes]:
    t = OpenAIToAnthropicStream(model="client-model")
    return t, run(t, chunks)


def events(data: bytes) -> list[tuple[str | None, Any]]:
    decoder = SSEDecoder()
    decoded = decoder.feed(data) + decoder.close()
    return [(e.event, e.data if e.data == "[DONE]" else orjson.loads(e.data)) for e in decoded]


def _mock(data: bytes) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def openai_final(data: bytes) -> Any:
    """Accumulate with the openai SDK's stream helper (ChatCompletionStreamState)."""
    client = openai.OpenAI(api_key="k", base_url="http://gw.test/v1", http_client=_mock(data))
    with client.chat.completions.stream(
        model="m",
        messages=[{"role": "user", "content": "x"}],
        stream_options={"include_usage": True},
    ) as s:
        for _ in s:
            pass
        return s.get_final_completion()


def openai_iter(data: bytes) -> list[Any]:
    client = openai.OpenAI(api_key="k", base_url="http://gw.test/v1", http_client=_mock(data))
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    return list(stream)


def anthropic_final(data: bytes) -> Any:
    client = anthropic.Anthropic(api_key="k", base_url="http://gw.test", http_client=_mock(data))
    with client.messages.stream(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as s:
        return s.get_final_message()


# --- upstream fixtures ---------------------------------------------------------------

ANTHROPIC_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-x",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5},
        },
    },
    {"type": "ping"},
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "hm"},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "s"},
    },
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello"}},
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": ", wörld 😀"},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "wx", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": ""},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'},
    },
    {"type": "content_block_stop", "index": 2},
    {
        "type": "content_block_start",
        "index": 3,
        "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
    },
    {"type": "content_block_stop", "index": 3},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 42},
    },
    {"type": "message_stop"},
]
ANTHROPIC_STREAM = anthropic_sse(ANTHROPIC_EVENTS)


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": choices,
        **extra,
    }


def _call(i: int, args: str, id_: str | None = None, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": i, "function": {"arguments": args}}
    if id_:
        call.update(id=id_, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


OPENAI_CHUNKS: list[dict[str, Any]] = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Hel"}),
    _chunk({"content": "lo 😀"}),
    _chunk(_call(0, "", "call_a", "wx")),
    _chunk(_call(0, '{"city":')),
    _chunk(_call(0, '"Oslo"}')),
    _chunk(_call(1, "{}", "call_b", "now")),
    _chunk({}, "tool_calls"),
    _chunk(
        None,
        usage={
            "prompt_tokens": 30,
            "completion_tokens": 9,
            "total_tokens": 39,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    ),
]
OPENAI_STREAM = openai_sse(OPENAI_CHUNKS)


# --- Anthropic -> OpenAI -------------------------------------------------------------


def test_a2o_chunk_sequence() -> None:
    t, out = a2o([ANTHROPIC_STREAM])
    got = events(out)
    assert all(name is None for name, _ in got)
    chunks = [data for _, data in got]
    assert chunks[-1] == "[DONE]"
    chunks = chunks[:-1]
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
        assert (c["id"], c["created"], c["model"], c["object"]) == (
            "chatcmpl-msg_01",
            7,
            "client-model",
            "chat.completion.chunk",
        )
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks[:-1]]

    def call(index: int, **fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **fields}]}

    def args(text: str) -> dict[str, Any]:
        return {"function": {"arguments": text}}

    def start(id_: str, name: str) -> dict[str, Any]:
        return {"id": id_, "type": "function", "function": {"name": name, "arguments": ""}}

    assert [d for d, _ in deltas] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": ", wörld 😀"},
        call(0, **start("toolu_1", "wx")),
        call(0, **args('{"city": ')),
        call(0, **args('"Oslo"}')),
        call(1, **start("toolu_2", "now")),
        call(1, **args("{}")),  # no arguments streamed: "{}" at the block's end
        {},
    ]
    assert [f for _, f in deltas] == [None] * 8 + ["tool_calls"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 42,
        "total_tokens": 72,
        "prompt_tokens_details": {"cached_tokens": 5},
    }
    assert (t.input_tokens, t.output_tokens) == (30, 42)


def test_a2o_accepted_by_openai_sdk() -> None:
    final = openai_final(a2o([ANTHROPIC_STREAM])[1])
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Hello, wörld 😀"
    calls = [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls]
    assert calls == [("toolu_1", "wx", '{"city": "Oslo"}'), ("toolu_2", "now", "{}")]
    assert final.usage.prompt_tokens == 30
    assert final.usage.completion_tokens == 42


def test_a2o_without_usage_chunk() -> None:
    got = events(a2o([ANTHROPIC_STREAM], include_usage=False)[1])
    assert got[-1] == (None, "[DONE]")
    assert got[-2][1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all("usage" not in data for _, data in got[:-1])


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
    ],
)
def test_a2o_finish_reasons(stop: str, finish: str) -> None:
    evs = [
        ANTHROPIC_EVENTS[0],
        {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 1}},
        {"type": "message_stop"},
    ]
    got = events(a2o([anthropic_sse(evs)])[1])
    assert got[1][1]["choices"][0]["finish_reason"] == finish


def test_a2o_upstream_error_event_ends_stream() -> None:
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    data = anthropic_sse([*ANTHROPIC_EVENTS[:8], err, *ANTHROPIC_EVENTS[8:]])
    t, out = a2o([data])
    got = events(out)
    assert got[-1] == (
        None,
        {
            "error": {
                "message": "Overloaded",
                "type": "server_error",
                "param": None,
                "code": "overloaded_error",
            }
        },
    )
    assert len(got) == 3  # role chunk, "Hello", error: no [DONE]
    assert t.error is not None and t.error.kind == "overloaded_error"
    with pytest.raises(openai.APIError, match="Overloaded"):
        openai_iter(out)


def test_a2o_truncated_upstream_is_an_error() -> None:
    t, out = a2o([anthropic_sse(ANTHROPIC_EVENTS[:9])])
    got = events(out)
    assert got[-1][1]["error"]["message"] == "Provider stream ended before it finished"
    assert all(e[1] == "[DONE]" or e[1].get("choices", [{}])[0].get("finish_reason") is None
               for e in got[:-1])  # fmt: skip
    assert isinstance(t.error, UpstreamProtocolError)
    with pytest.raises(openai.APIError, match="ended before it finished"):
        openai_iter(out)


def test_a2o_stop_reason_without_message_stop_is_complete() -> None:
    t, out = a2o([anthropic_sse(ANTHROPIC_EVENTS[:-1])])
    got = events(out)
    assert got[-1] == (None, "[DONE]") and got[-2][1]["choices"] == []
    assert got[-3][1]["choices"][0]["finish_reason"] == "tool_calls"
    assert t.error is None


def test_a2o_empty_upstream_is_an_error() -> None:
    _t, out = a2o([b": nothing\n\n"])
    assert [name for name, _ in events(out)] == [None]
    with pytest.raises(openai.APIError):
        openai_iter(out)


def test_a2o_close_and_feed_after_end_are_noops() -> None:
    t = AnthropicToOpenAIStream(model="m", include_usage=False)
    assert t.feed(ANTHROPIC_STREAM).endswith(b"data: [DONE]\n\n")
    assert t.close() == b""
    assert t.feed(ANTHROPIC_STREAM) == b""
    assert t.close() == b""


@pytest.mark.parametrize(
    "bad",
    [
        b"data: {not json\n\n",
        anthropic_sse([{"type": "message_stop"}]),
        anthropic_sse([ANTHROPIC_EVENTS[0], ANTHROPIC_EVENTS[0]]),
        anthropic_sse([ANTHROPIC_EVENTS[0], {"type": "content_block_delta", "index": 0}]),
        anthropic_sse([ANTHROPIC_EVENTS[0], {"type": "content_block_start", "index": 0}]),
    ],
)
def test_a2o_malformed_upstream_raises(bad: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        AnthropicToOpenAIStream(model="m", include_usage=False).feed(bad)


# --- OpenAI -> Anthropic -------------------------------------------------------------


def test_o2a_event_sequence() -> None:
    t, out = o2a([OPENAI_STREAM])
    got = events(out)
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)
    for name, data in got:
        assert name == data["type"]
        adapter.validate_python(data)
    assert [data for _, data in got] == [
        {
            "type": "message_start",
            "message": {
                "id": "msg_chatcmpl-9",
                "type": "message",
                "role": "assistant",
                "model": "client-model",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "lo 😀"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "call_a", "name": "wx", "input": {}},
        },
        {  # the fragments, held until the block stops and checked whole
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city":"Oslo"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "call_b", "name": "now", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"input_tokens": 20, "output_tokens": 9, "cache_read_input_tokens": 10},
        },
        {"type": "message_stop"},
    ]
    assert (t.input_tokens, t.output_tokens) == (30, 9)


def test_o2a_accepted_by_anthropic_sdk() -> None:
    final = anthropic_final(o2a([OPENAI_STREAM])[1])
    assert final.id == "msg_chatcmpl-9"
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[0].text == "Hello 😀"
    assert (final.content[1].name, final.content[1].input) == ("wx", {"city": "Oslo"})
    assert (final.content[2].id, final.content[2].input) == ("call_b", {})
    assert (final.usage.input_tokens, final.usage.output_tokens) == (20, 9)
    assert final.usage.cache_read_input_tokens == 10


def test_o2a_invalid_tool_arguments_become_raw() -> None:
    chunks = [_chunk(_call(0, '{"city": "Os', "call_a", "wx")), _chunk(_call(0, "lo")),
              _chunk({}, "tool_calls")]  # fmt: skip
    _t, out = o2a([openai_sse(chunks)])
    deltas = [d["delta"] for name, d in events(out) if name == "content_block_delta"]
    assert deltas == [
        {"type": "input_json_delta", "partial_json": '{"_raw":"{\\"city\\": \\"Oslo"}'}
    ]
    block = anthropic_final(out).content[0]
    assert block.input == {"_raw": '{"city": "Oslo'}  # as the non-streaming reply has it


def test_o2a_tool_arguments_are_bounded() -> None:
    part = "x" * 65536
    chunks = [_chunk(_call(0, part, "call_a", "wx")), *[_chunk(_call(0, part))] * 16]
    with pytest.raises(UpstreamProtocolError, match="over 1 MiB"):
        o2a([openai_sse(chunks)])


def test_o2a_without_done_or_finish_is_an_error() -> None:
    t, out = o2a([openai_sse(OPENAI_CHUNKS[:3], done=False)])
    got = events(out)
    assert [name for name, _ in got] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "error",
    ]  # fmt: skip
    assert got[-1][1]["error"]["message"] == "Provider stream ended before it finished"
    assert isinstance(t.error, UpstreamProtocolError)
    with pytest.raises(anthropic.APIStatusError, match="ended before it finished"):
        anthropic_final(out)


def test_o2a_finish_without_done_is_complete() -> None:
    t, out = o2a([openai_sse([*OPENAI_CHUNKS[:3], _chunk({}, "stop")], done=False)])
    assert t.error is None
    got = [data for _, data in events(out)]
    assert [d["type"] for d in got] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert got[-2] == {
        "type": "message_delta",
        "usage": {"output_tokens": 0},
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    }
    assert anthropic_final(out).content[0].text == "Hello 😀"


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_o2a_stop_reasons(finish: str, stop: str) -> None:
    _t, out = o2a([openai_sse([_chunk({"content": "x"}), _chunk({}, finish)])])
    assert events(out)[-2][1]["delta"]["stop_reason"] == stop


def test_o2a_usage_in_finish_chunk_and_empty_reply() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}
    _t, out = o2a([openai_sse([_chunk({"role": "assistant"}, "stop", usage=usage)])])
    got = [data for _, data in events(out)]
    assert [d["type"] for d in got] == ["message_start", "message_delta", "message_stop"]
    assert got[0]["message"]["usage"]["input_tokens"] == 5
    assert anthropic_final(out).content == []


def test_o2a_text_after_tool_call_and_index_less_tool_calls() -> None:
    calls = {
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "b", "arguments": {"k": 1}}},
        ]
    }
    _t, out = o2a([openai_sse([_chunk(calls), _chunk({"content": "done"}), _chunk({}, "stop")])])
    final = anthropic_final(out)
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        ("tool_use", {}),
        ("tool_use", {"k": 1}),
        ("text", None),
    ]
    assert final.stop_reason == "tool_use"  # "stop" with tool calls


def test_o2a_azure_filter_chunk_is_skipped() -> None:
    first = {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [],
        "prompt_filter_results": [],
    }
    _t, out = o2a([openai_sse([first, *OPENAI_CHUNKS])])
    assert events(out)[0][1]["message"]["id"] == "msg_chatcmpl-9"


def test_o2a_upstream_error_chunk_ends_stream() -> None:
    err = {"error": {"message": "Rate limited", "type": "requests", "code": "rate_limit_exceeded"}}
    t, out = o2a([openai_sse([*OPENAI_CHUNKS[:2], err, *OPENAI_CHUNKS[2:]])])
    got = events(out)
    assert got[-1] == (
        "error",
        {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited"}},
    )
    assert [name for name, _ in got] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert t.error is not None and t.error.kind == "rate_limit_error"
    with pytest.raises(anthropic.APIStatusError, match="Rate limited"):
        anthropic_final(out)


@pytest.mark.parametrize("upstream", [b"", b"data: [DONE]\n\n", b": keep-alive\n\n"])
def test_o2a_empty_upstream_is_an_error(upstream: bytes) -> None:
    _t, out = o2a([upstream])
    assert [name for name, _ in events(out)] == ["error"]
    with pytest.raises(anthropic.APIStatusError):
        anthropic_final(out)


def test_o2a_close_after_done_is_noop() -> None:
    t = OpenAIToAnthropicStream(model="m")
    assert t.feed(OPENAI_STREAM).endswith(b'{"type":"message_stop"}\n\n')
    assert t.close() == b""
    assert t.feed(OPENAI_STREAM) == b""


@pytest.mark.parametrize("bad", [b"data: {nope\n\n", b"data: [1, 2]\n\n"])
def test_o2a_malformed_upstream_raises(bad: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        OpenAIToAnthropicStream(model="m").feed(bad)


# --- stream_error ----------------------------------------------------------------------


def test_stream_error_bytes() -> None:
    exc = Overloaded()
    assert stream_error("openai", exc) == (
        b'data: {"error":{"message":"Gateway overloaded, retry later","type":"server_error",'
        b'"param":null,"code":"overloaded_error"}}\n\n'
    )
    assert stream_error("anthropic", exc) == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Gateway overloaded, retry later"}}\n\n'
    )
    with pytest.raises(openai.APIError, match="overloaded"):
        openai_iter(stream_error("openai", exc))
    with pytest.raises(anthropic.APIStatusError, match="overloaded"):
        anthropic_final(stream_error("anthropic", exc))


# --- property tests: re-chunking never changes the output ------------------------------


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


_cuts = st.lists(st.integers(0, 100_000), max_size=25)


@settings(max_examples=60, deadline=None)
@given(cuts=_cuts, crlf=st.booleans())
def test_a2o_rechunking_is_invisible(cuts: list[int], crlf: bool) -> None:
    upstream = ANTHROPIC_STREAM.replace(b"\n", b"\r\n") if crlf else ANTHROPIC_STREAM
    whole = a2o([ANTHROPIC_STREAM])[1]
    assert a2o(_split(upstream, cuts))[1] == whole


@settings(max_examples=60, deadline=None)
@given(cuts=_cuts, crlf=st.booleans())
def test_o2a_rechunking_is_invisible(cuts: list[int], crlf: bool) -> None:
    upstream = OPENAI_STREAM.replace(b"\n", b"\r\n") if crlf else OPENAI_STREAM
    whole = o2a([OPENAI_STREAM])[1]
    assert o2a(_split(upstream, cuts))[1] == whole


def test_byte_at_a_time() -> None:
    for translate, upstream in ((a2o, ANTHROPIC_STREAM), (o2a, OPENAI_STREAM)):
        bytewise = translate(upstream[i : i + 1] for i in range(len(upstream)))[1]
        assert bytewise == translate([upstream])[1]


def test_pre_encoded_text_chunks_equal_the_general_encoder() -> None:
    a2o = AnthropicToOpenAIStream(model='we"ird', include_usage=False, created=1)
    a2o.feed(b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1"}}\n\n')
    for text in ("plain", 'qu"ote \\ back', "ünï 😀", "\n"):
        assert a2o._text(text) == a2o._chunk({"content": text})


def test_pre_encoded_text_deltas_equal_the_general_encoder() -> None:
    from minillm.core.translate._to_anthropic_stream import _text_delta

    o2a = OpenAIToAnthropicStream(model="m")
    for text in ("plain", 'qu"ote \\ back', "ünï 😀", "\n"):
        assert _text_delta(3, text) == o2a._delta({"type": "text_delta", "text": text}, 3)
