"""What tier2 reads from answers it passes through: cached tokens and generated text
(pure; the stream is cut anywhere and must read the same)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import jsonutil
from tier2.http.observe import Outcome, StreamObserver, unary_outcome
from tier2.http.parse import parse_request, upstream_headers
from tier2.scheduling.types import Priority


def _chunk(content: str | None = None, usage: dict[str, object] | None = None) -> bytes:
    data: dict[str, object] = {"object": "chat.completion.chunk", "choices": []}
    if content is not None:
        data["choices"] = [{"index": 0, "delta": {"content": content}}]
    if usage is not None:
        data["usage"] = usage
    return b"data: " + jsonutil.dumps(data) + b"\n\n"


USAGE = {
    "prompt_tokens": 80,
    "completion_tokens": 3,
    "prompt_tokens_details": {"cached_tokens": 64},
}
STREAM = (
    _chunk("Hel")
    + _chunk("lo, ")
    + b": keep-alive\n\n"
    + _chunk("world")
    + _chunk(usage=USAGE)
    + b"data: [DONE]\n\n"
)


def _feed(parts: list[bytes], max_chars: int = 1000) -> Outcome:
    observer = StreamObserver(max_chars)
    for part in parts:
        observer.feed(part)
    return observer.outcome()


def test_stream_outcome_has_text_and_the_final_usage_chunks_cached_tokens() -> None:
    assert _feed([STREAM]) == Outcome(64, "Hello, world")


@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=8))
def test_cutting_the_stream_anywhere_reads_the_same(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    parts = [STREAM[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert _feed(parts) == Outcome(64, "Hello, world")


def test_text_is_bounded() -> None:
    assert _feed([STREAM], max_chars=4) == Outcome(64, "Hell")


def test_stream_without_usage_reports_none() -> None:
    assert _feed([_chunk("a"), b"data: [DONE]\n\n", b"data: {broken\n\n"]) == Outcome(None, "a")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"choices": [{"message": {"role": "assistant", "content": "hi"}}], "usage": USAGE},
            Outcome(64, "hi"),
        ),
        ({"choices": [{"text": "done"}], "usage": {"prompt_tokens": 3}}, Outcome(None, "done")),
        ({"choices": [{"message": {"content": None, "tool_calls": []}}]}, Outcome(None, "")),
        (
            {"choices": [], "usage": {"prompt_tokens_details": {"cached_tokens": -1}}},
            Outcome(None, ""),
        ),
        ([1, 2], Outcome(None, "")),
    ],
)
def test_unary_outcome(body: object, expected: Outcome) -> None:
    assert unary_outcome(jsonutil.dumps(body), 100) == expected


def test_unary_garbage_is_an_empty_outcome() -> None:
    assert unary_outcome(b"<html>bad gateway</html>", 100) == Outcome(None, "")


def test_request_fields_and_forwarded_headers() -> None:
    raw = jsonutil.dumps({"model": "m", "messages": [], "stream": True})
    req = parse_request(
        "chat",
        raw,
        {
            "x-strata-priority": "critical",
            "x-session-id": "s-1",
            "Authorization": "Bearer pod-key",
            "Connection": "keep-alive",
            "x-strata-consumer": "team-a",
        },
    )
    assert (req.model, req.stream, req.priority, req.session, req.raw) == (
        "m",
        True,
        Priority.CRITICAL,
        "s-1",
        raw,
    )
    assert req.headers == {
        "x-session-id": "s-1",
        "authorization": "Bearer pod-key",
        "content-type": "application/json",
    }
    assert upstream_headers({"Host": "x", "Content-Type": "application/json"}) == {
        "content-type": "application/json"
    }
