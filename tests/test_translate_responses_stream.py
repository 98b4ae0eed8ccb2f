"""Chat -> Responses replies and streams, checked against the openai SDK.

Streams go through the SDK's own ``responses.stream()`` accumulator (strict
about event order and item identity) over an ``httpx2.MockTransport``; every
event and final response is also validated with the SDK's pydantic types.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import openai
import orjson
import pydantic
import pytest
from hypothesis import given, settings
from openai.types.responses import Response, ResponseStreamEvent

from minillm.core.errors import Overloaded, UpstreamProtocolError
from minillm.core.translate import (
    AnthropicToOpenAIStream,
    ChainedStream,
    ChatToResponsesStream,
    ResponsesPlan,
    anthropic_to_openai_response,
    chat_to_responses_response,
    responses_stream_error,
)
from test_translate_responses_api import plan_for
from test_translate_streams import ANTHROPIC_STREAM, _cuts, _mock, _split, events, openai_sse, run

EVENT = pydantic.TypeAdapter(ResponseStreamEvent)


# --- replies -------------------------------------------------------------------------

TOOLS = [
    {"type": "function", "name": "wx", "parameters": {"type": "object", "properties": {}}},
    {"type": "custom", "name": "apply_patch"},
    {"type": "namespace", "name": "mcp__docs", "description": "Docs.",
     "tools": [{"type": "function", "name": "search", "parameters": {"type": "object"}}]},
    {"type": "web_search"},
]  # fmt: skip
PLAN = plan_for(tools=TOOLS, instructions="Be brief.", max_output_tokens=99, temperature=0.2)


def completion(message: dict[str, Any], finish: str | None = "stop", **usage: Any) -> Any:
    return {
        "id": "chatcmpl-9", "object": "chat.completion", "created": 7, "model": "up",
        "choices": [{"index": 0, "message": {"role": "assistant", **message},
                     "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, **usage},
    }  # fmt: skip


def reply(chat_body: dict[str, Any], plan: ResponsesPlan = PLAN) -> dict[str, Any]:
    out = chat_to_responses_response(chat_body, plan)
    Response.model_validate(orjson.loads(orjson.dumps(out)))  # the SDK's own model accepts it
    return out


def test_text_reply() -> None:
    out = reply(completion({"content": "Hi!"}, prompt_tokens_details={"cached_tokens": 4},
                           completion_tokens_details={"reasoning_tokens": 2}))  # fmt: skip
    assert out["output"] == [{
        "id": "msg_9", "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": "Hi!", "annotations": [], "logprobs": []}],
    }]  # fmt: skip
    assert out["usage"] == {
        "input_tokens": 12, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15,
    }  # fmt: skip
    assert (out["id"], out["object"], out["created_at"]) == ("resp_9", "response", 7)
    assert (out["status"], out["incomplete_details"], out["error"]) == ("completed", None, None)
    assert out["model"] == "client-model"  # the model the client asked for
    assert (out["instructions"], out["max_output_tokens"], out["temperature"]) == (
        "Be brief.", 99, 0.2,
    )  # fmt: skip
    assert out["tools"] == TOOLS and out["tool_choice"] == "auto"
    assert Response.model_validate(out).output_text == "Hi!"


def test_tool_call_reply_names_calls_as_declared() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "wx", "arguments": '{"a":1}'}},
        {"id": "call_2", "type": "function",
         "function": {"name": "mcp__docs__search", "arguments": {"q": "x"}}},
        {"id": "call_3", "type": "function",
         "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'}},
        {"id": "call_4", "type": "function", "function": {"name": "wx", "arguments": ""}},
    ]  # fmt: skip
    out = reply(completion({"content": None, "tool_calls": calls}, "tool_calls"))
    assert out["output"] == [
        {"id": "fc_call_1", "type": "function_call", "status": "completed", "call_id": "call_1",
         "name": "wx", "arguments": '{"a":1}'},
        {"id": "fc_call_2", "type": "function_call", "status": "completed", "call_id": "call_2",
         "name": "search", "arguments": '{"q":"x"}', "namespace": "mcp__docs"},
        {"id": "ctc_call_3", "type": "custom_tool_call", "status": "completed",
         "call_id": "call_3", "name": "apply_patch", "input": "*** Begin Patch"},
        {"id": "fc_call_4", "type": "function_call", "status": "completed", "call_id": "call_4",
         "name": "wx", "arguments": "{}"},
    ]  # fmt: skip
    assert out["status"] == "completed"


@pytest.mark.parametrize(
    ("finish", "status", "reason"),
    [("length", "incomplete", "max_output_tokens"),
     ("content_filter", "incomplete", "content_filter"),
     ("stop", "completed", None), ("tool_calls", "completed", None), (None, "completed", None)],
)  # fmt: skip
def test_reply_status(finish: str | None, status: str, reason: str | None) -> None:
    out = reply(completion({"content": "x"}, finish))
    assert out["status"] == status
    assert out["incomplete_details"] == (reason and {"reason": reason})


def test_anthropic_reply_through_chat() -> None:
    message = {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": "s"},
            {"type": "text", "text": "Searching."},
            {"type": "tool_use", "id": "toolu_1", "name": "mcp__docs__search", "input": {"q": "x"}},
        ],
        "stop_reason": "max_tokens", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 20},
    }  # fmt: skip
    out = reply(anthropic_to_openai_response(message, created=7))
    assert out["id"] == "resp_msg_01" and out["model"] == "client-model"
    assert [o["type"] for o in out["output"]] == ["message", "function_call"]
    call = out["output"][1]
    assert (call["call_id"], call["name"], call["namespace"]) == ("toolu_1", "search", "mcp__docs")
    assert orjson.loads(call["arguments"]) == {"q": "x"}
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": "max_output_tokens"}
    assert out["usage"]["input_tokens"] == 30
    assert out["usage"]["input_tokens_details"]["cached_tokens"] == 20


def test_refusal_and_odd_replies() -> None:
    assert (
        reply(completion({"content": None, "refusal": "No."}))["output"][0]["content"][0]["text"]
        == "No."
    )
    assert reply(completion({"content": ""}))["output"] == []
    custom = {"id": "c", "type": "function", "function": {"name": "apply_patch", "arguments": "?"}}
    assert reply(completion({"tool_calls": [custom]}))["output"][0]["input"] == "?"
    for junk in ({}, {"choices": []}, {"choices": [{"message": "x"}]}, []):
        with pytest.raises(UpstreamProtocolError):
            chat_to_responses_response(junk, PLAN)  # type: ignore[arg-type]


# --- streams -------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 7, "model": "up",
            "choices": choices, **extra}  # fmt: skip


def call(index: int, args: str, id_: str | None = None, name: str | None = None) -> Any:
    c: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id_:
        c.update(id=id_, type="function")
        c["function"]["name"] = name
    return {"tool_calls": [c]}


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
         "prompt_tokens_details": {"cached_tokens": 4}}  # fmt: skip
CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello, "}),
    chunk({"content": "wörld 😀"}),
    chunk(call(0, "", "call_1", "wx")),
    chunk(call(0, '{"a":')),
    chunk(call(1, '{"q":', "call_2", "mcp__docs__search")),  # parallel calls interleave
    chunk(call(0, "1}")),
    chunk(call(1, '"x"}')),
    chunk(call(2, '{"input":"*** Begin', "call_3", "apply_patch")),
    chunk(call(2, ' Patch"}')),
    chunk({}, "tool_calls"),
    chunk(None, usage=USAGE),
]
STREAM = openai_sse(CHUNKS)
COMPLETION = completion(
    {"content": "Hello, wörld 😀", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "wx", "arguments": '{"a":1}'}},
        {"id": "call_2", "type": "function",
         "function": {"name": "mcp__docs__search", "arguments": '{"q":"x"}'}},
        {"id": "call_3", "type": "function",
         "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'}}]},
    "tool_calls", prompt_tokens_details={"cached_tokens": 4},
)  # fmt: skip


def translate(chunks: Iterable[bytes], plan: ResponsesPlan = PLAN) -> bytes:
    return run(ChatToResponsesStream(plan), chunks)


def decoded(data: bytes) -> list[dict[str, Any]]:
    """The events, each checked: named after its type, numbered in order, valid for the SDK."""
    out = []
    for i, (name, event) in enumerate(events(data)):
        assert name == event["type"] and event["sequence_number"] == i
        EVENT.validate_python(event)
        out.append(event)
    return out


def sdk_stream(data: bytes, tools: Any = TOOLS) -> tuple[list[Any], Any]:
    """Events and final response as ``client.responses.stream()`` accumulates them."""
    client = openai.OpenAI(api_key="k", base_url="http://gw.test/v1", http_client=_mock(data))
    with client.responses.stream(model="client-model", input="hi", tools=tools) as stream:
        seen = list(stream)
        final = seen[-1].response if seen[-1].type == "response.completed" else None
        return seen, final and stream.get_final_response()


def test_stream_event_sequence() -> None:
    got = [(e["type"], e.get("output_index")) for e in decoded(translate([STREAM]))]
    assert got == [
        ("response.created", None), ("response.in_progress", None),
        ("response.output_item.added", 0), ("response.content_part.added", 0),
        ("response.output_text.delta", 0), ("response.output_text.delta", 0),
        ("response.output_text.done", 0), ("response.content_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1), ("response.function_call_arguments.delta", 1),
        ("response.output_item.added", 2), ("response.function_call_arguments.delta", 2),
        ("response.function_call_arguments.delta", 1),
        ("response.function_call_arguments.delta", 2),
        ("response.output_item.added", 3),
        ("response.function_call_arguments.done", 1), ("response.output_item.done", 1),
        ("response.function_call_arguments.done", 2), ("response.output_item.done", 2),
        ("response.custom_tool_call_input.delta", 3), ("response.custom_tool_call_input.done", 3),
        ("response.output_item.done", 3),
        ("response.completed", None),
    ]  # fmt: skip


def test_stream_ends_as_the_whole_body_translation() -> None:
    last = decoded(translate([STREAM]))[-1]
    assert last["response"] == chat_to_responses_response(COMPLETION, PLAN)
    seen, final = sdk_stream(translate([STREAM]))
    assert final.output_text == "Hello, wörld 😀"
    assert [(o.type, o.name, getattr(o, "namespace", None)) for o in final.output[1:]] == [
        ("function_call", "wx", None), ("function_call", "search", "mcp__docs"),
        ("custom_tool_call", "apply_patch", None),
    ]  # fmt: skip
    assert final.output[3].input == "*** Begin Patch"
    assert (final.usage.input_tokens, final.usage.input_tokens_details.cached_tokens) == (12, 4)
    snapshots = [e.snapshot for e in seen if e.type == "response.output_text.delta"]
    assert snapshots == ["Hello, ", "Hello, wörld 😀"]


def test_stream_token_counts() -> None:
    t = ChatToResponsesStream(PLAN)
    run(t, [STREAM])
    assert (t.input_tokens, t.output_tokens) == (12, 3)


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"),
                                                ("content_filter", "content_filter")])  # fmt: skip
def test_stream_incomplete(finish: str, reason: str) -> None:
    data = translate([openai_sse([chunk({"content": "x"}), chunk({}, finish)])])
    seen, final = sdk_stream(data)
    assert final is None and seen[-1].type == "response.incomplete"
    assert seen[-1].response.incomplete_details.reason == reason
    assert seen[-1].response.output_text == "x"


def test_stream_upstream_error_chunk_fails_the_response() -> None:
    error = {"error": {"message": "Overloaded now", "type": "rate_limit_error"}}
    t = ChatToResponsesStream(PLAN)
    data = t.feed(openai_sse([chunk({"content": "x"}), error, chunk({"content": "late"})]))
    assert t.error is not None and t.close() == b"" and t.feed(STREAM) == b""
    kinds = [e["type"] for e in decoded(data)]
    assert kinds[-2:] == ["error", "response.failed"] and "late" not in data.decode()
    failed = decoded(data)[-1]["response"]
    assert failed["status"] == "failed" and failed["output"] == []
    assert failed["error"] == {"code": "rate_limit_exceeded", "message": "Overloaded now"}
    with pytest.raises(openai.APIError, match="Overloaded now"):
        sdk_stream(data)


def test_stream_cut_short_fails_the_response() -> None:
    t = ChatToResponsesStream(PLAN)
    data = run(t, [openai_sse(CHUNKS[:5], done=False)])  # no finish_reason, no [DONE]
    kinds = [e["type"] for e in decoded(data)]
    assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds
    assert isinstance(t.error, UpstreamProtocolError)
    with pytest.raises(openai.APIError, match="ended before it finished"):
        sdk_stream(data)


def test_stream_cut_short_through_the_chain() -> None:
    cut = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: message_delta")]
    t = ChainedStream(
        AnthropicToOpenAIStream(model="m", include_usage=True), ChatToResponsesStream(PLAN)
    )
    data = run(t, [cut])
    assert [e["type"] for e in decoded(data)][-2:] == ["error", "response.failed"]
    assert isinstance(t.error, UpstreamProtocolError)


def test_fail_numbers_the_error_after_the_stream() -> None:
    t = ChatToResponsesStream(PLAN)
    data = t.feed(openai_sse(CHUNKS[:3], done=False))
    data += t.fail(Overloaded("Shutting down"))
    kinds = [e["type"] for e in decoded(data)]  # decoded checks sequence_number == position
    assert kinds[-2:] == ["error", "response.failed"] and t.error is not None
    assert t.feed(STREAM) == b"" and t.close() == b""


@pytest.mark.parametrize("upstream", [b"", b"data: [DONE]\n\n", openai_sse([chunk(None)])])
def test_stream_that_never_started_is_an_error(upstream: bytes) -> None:
    data = translate([upstream])
    assert [e["type"] for e in decoded(data)] == ["error"]
    with pytest.raises(openai.APIError, match="ended before it started"):
        sdk_stream(data)


@pytest.mark.parametrize(
    "upstream",
    [b"data: {nope\n\n", b"data: [1]\n\n",
     openai_sse([chunk(call(0, "{", "c", "wx")), chunk({"content": "x"}), chunk(call(0, "}"))])],
)  # fmt: skip
def test_stream_malformed_upstream_raises(upstream: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        translate([upstream])


def test_stream_odd_but_valid_upstreams() -> None:
    upstream = openai_sse([
        chunk(None, prompt_filter_results=[]),  # Azure's first chunk: skipped
        chunk({"tool_calls": [{"id": "c1", "function": {"name": "wx", "arguments": {"a": 1}}}]}),
        chunk({"tool_calls": [{"id": "c2", "function": {"name": "wx"}}]}),  # no index, no args
        chunk({"content": "after"}),
        chunk({}, "stop"),  # and no [DONE]: finished all the same
    ], done=False)  # fmt: skip
    _, final = sdk_stream(translate([upstream]))  # ended by close(), not [DONE]
    assert [(o.type, getattr(o, "arguments", None)) for o in final.output] == [
        ("function_call", '{"a":1}'), ("function_call", "{}"), ("message", None),
    ]  # fmt: skip
    assert final.id == "resp_9" and final.status == "completed"


@settings(max_examples=60, deadline=None)
@given(cuts=_cuts)
def test_stream_rechunking_is_invisible(cuts: list[int]) -> None:
    assert translate(_split(STREAM, cuts)) == translate([STREAM])


def test_stream_byte_at_a_time() -> None:
    assert translate(STREAM[i : i + 1] for i in range(len(STREAM))) == translate([STREAM])


def test_pre_encoded_text_delta_equals_the_general_encoder() -> None:
    for text in ("plain", 'qu"ote \\ back', "ünï 😀", "\n"):
        t = ChatToResponsesStream(PLAN)
        t.feed(openai_sse([chunk({"content": "a"})], done=False))
        fast = t._text(text)
        t._seq -= 1
        general = t._emit(
            "response.output_text.delta",
            item_id="msg_9",
            output_index=0,
            content_index=0,
            delta=text,
            logprobs=[],
        )
        assert fast == general


# --- Anthropic upstream: the composition ---------------------------------------------


def chained() -> ChainedStream:
    first = AnthropicToOpenAIStream(model="claude-x", include_usage=True, created=7)
    return ChainedStream(first, ChatToResponsesStream(plan_for()))


def test_anthropic_stream_through_the_chain() -> None:
    t = chained()
    data = run(t, [ANTHROPIC_STREAM])
    decoded(data)
    _, final = sdk_stream(data, tools=[])
    assert final.output_text == "Hello, wörld 😀" and final.model == "client-model"
    assert final.id == "resp_msg_01"
    calls = [(o.call_id, o.name, o.arguments) for o in final.output[1:]]
    assert calls == [("toolu_1", "wx", '{"city": "Oslo"}'), ("toolu_2", "now", "{}")]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (30, 42)
    assert final.usage.input_tokens_details.cached_tokens == 5
    assert (t.input_tokens, t.output_tokens) == (30, 42)


@settings(max_examples=40, deadline=None)
@given(cuts=_cuts)
def test_chain_rechunking_is_invisible(cuts: list[int]) -> None:
    assert run(chained(), _split(ANTHROPIC_STREAM, cuts)) == run(chained(), [ANTHROPIC_STREAM])


def test_chain_passes_on_an_anthropic_error_event() -> None:
    upstream = ANTHROPIC_STREAM.split(b"event: content_block_start")[0] + (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    data = run(chained(), [upstream])
    assert [e["type"] for e in decoded(data)][-2:] == ["error", "response.failed"]
    with pytest.raises(openai.APIError, match="Overloaded"):
        sdk_stream(data)


# --- responses_stream_error ----------------------------------------------------------


def test_responses_stream_error() -> None:
    data = responses_stream_error(Overloaded(), 5)
    ((name, event),) = events(data)
    assert name == "error" and event == {
        "type": "error", "code": "overloaded_error", "message": "Gateway overloaded, retry later",
        "param": None, "sequence_number": 5,
        "error": {"message": "Gateway overloaded, retry later", "type": "server_error",
                  "param": None, "code": "overloaded_error"},
    }  # fmt: skip
    EVENT.validate_python(event)
    with pytest.raises(openai.APIError, match="overloaded"):
        sdk_stream(data)
