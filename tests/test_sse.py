"""SSE decoder and encoder."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm.core.errors import UpstreamProtocolError
from minillm.core.sse import SSEDecoder, SSEEvent, encode_event


def decode_all(chunks: Iterable[bytes], max_line: int = 1 << 20) -> list[SSEEvent]:
    decoder = SSEDecoder(max_line)
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.close()


def test_basic_events() -> None:
    stream = b"event: a\ndata: 1\n\ndata: 2\n\n"
    assert decode_all([stream]) == [SSEEvent("a", "1"), SSEEvent(None, "2")]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    stream = eol.join([b"event: x", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert decode_all([stream]) == [SSEEvent("x", "a\nb"), SSEEvent(None, "c")]


def test_crlf_split_across_chunks_counts_once() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == [SSEEvent(None, "a")]
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [SSEEvent(None, "b")]


def test_cr_at_chunk_end_dispatches_without_waiting() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [SSEEvent(None, "a")]
    assert decoder.feed(b"\n") == []  # the LF pairs with the last CR: not a new line
    assert decoder.feed(b"data: b\n\n") == [SSEEvent(None, "b")]


def test_comments_fields_and_spaces() -> None:
    stream = (
        b": keep-alive\n"
        b"id: 7\nretry: 100\nfoo: bar\n"
        b"data:no-space\n"
        b"data:  two spaces\n"
        b"data\n"
        b"event:e\n\n"
    )
    assert decode_all([stream]) == [SSEEvent("e", "no-space\n two spaces\n")]


def test_event_without_data_is_not_dispatched() -> None:
    assert decode_all([b"event: ping\n\n: c\n\nid: 1\n\ndata: x\n\n"]) == [SSEEvent(None, "x")]


def test_event_name_resets_after_dispatch() -> None:
    stream = b"event: a\ndata: 1\n\ndata: 2\n\nevent: b\n\ndata: 3\n\n"
    assert [e.event for e in decode_all([stream])] == ["a", None, None]


def test_close_flushes_unterminated_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: x\ndata: tail") == []
    assert decoder.close() == [SSEEvent("x", "tail")]
    assert decode_all([b"data: a\n"]) == [SSEEvent(None, "a")]
    assert decode_all([b"data: a\n\n"]) == [SSEEvent(None, "a")]


def test_bom_and_utf8() -> None:
    text = "data: héllo 😀\n\n".encode()
    assert decode_all([b"\xef\xbb\xbf" + text]) == [SSEEvent(None, "héllo 😀")]
    # a multi-byte character split across chunks survives
    assert decode_all([text[:9], text[9:]]) == [SSEEvent(None, "héllo 😀")]
    assert decode_all([b"data: \xff\n\n"]) == [SSEEvent(None, "\ufffd")]


def test_line_too_long() -> None:
    with pytest.raises(UpstreamProtocolError):
        SSEDecoder(max_line=10).feed(b"data: 0123456789")  # partial line
    with pytest.raises(UpstreamProtocolError):
        SSEDecoder(max_line=10).feed(b"data: 0\ndata: 0123456789\n")  # complete line
    decoder = SSEDecoder(max_line=10)
    for _ in range(3):
        decoder.feed(b"dat")
    with pytest.raises(UpstreamProtocolError):
        decoder.feed(b"aa")  # accumulated partial
    # many lines in one chunk, each short, pass
    assert len(decode_all([b"data: 1234\n\n" * 100], max_line=10)) == 100


def test_encode_event() -> None:
    assert encode_event('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_event(b"x", "ping") == b"event: ping\ndata: x\n\n"
    assert encode_event("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode_event("") == b"data: \n\n"


def test_encode_decode_roundtrip() -> None:
    events = [SSEEvent("x", "line1\nline2"), SSEEvent(None, ""), SSEEvent("y", " lead")]
    stream = b"".join(encode_event(e.data, e.event) for e in events)
    assert decode_all([stream]) == events


# --- property tests ------------------------------------------------------------------

_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20
)
_events = st.lists(
    st.builds(
        SSEEvent,
        st.none() | _text.filter(bool),
        st.lists(_text, min_size=1, max_size=3).map("\n".join),
    ),
    max_size=8,
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(
    events=_events,
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_rechunking_and_line_endings_do_not_change_events(
    events: list[SSEEvent], eol: bytes, cuts: list[int]
) -> None:
    stream = b"".join(encode_event(e.data, e.event) for e in events)
    stream = b": comment\n" + stream
    stream = stream.replace(b"\n", eol)
    assert decode_all([stream]) == events
    assert decode_all(_split(stream, cuts)) == events


@settings(max_examples=30, deadline=None)
@given(events=_events)
def test_byte_at_a_time(events: list[SSEEvent]) -> None:
    stream = b"".join(encode_event(e.data, e.event) for e in events).replace(b"\n", b"\r\n")
    assert decode_all(stream[i : i + 1] for i in range(len(stream))) == events
