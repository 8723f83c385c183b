"""SSE decoding: events out are the same however the bytes are split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from common.sse import SSEDecoder

STREAM = (
    b'data: {"a":1}\n\n'
    b": keep-alive comment\n\n"
    b"event: x\ndata: line one\ndata: line two\n\n"
    b'data: {"b":2}\r\n\r\n'
    b"data: [DONE]\n\n"
)


def _run(chunks: list[bytes]) -> list[tuple[bytes, bytes]]:
    d = SSEDecoder()
    out: list[tuple[bytes, bytes]] = []
    for c in chunks:
        out.extend((e.raw, e.data) for e in d.feed(c))
    out.extend((e.raw, e.data) for e in d.flush())
    return out


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def test_events_and_data() -> None:
    events = _run([STREAM])
    assert [d for _, d in events] == [b'{"a":1}', b"", b"line one\nline two", b'{"b":2}', b"[DONE]"]


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_split_invariance(cuts: list[int]) -> None:
    assert _run(_split(STREAM, cuts)) == _run([STREAM])


def test_unterminated_last_event_is_flushed() -> None:
    assert _run([b"data: x\n\ndata: y"])[-1][1] == b"y"
