"""Gemini `streamGenerateContent?alt=sse` → OpenAI chat.completion.chunk SSE.

The cassette is written from Google's documented format: each `data:` event is a whole
GenerateContentResponse with the new text, complete functionCall parts and the running
usageMetadata, framed with \\r\\n."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from common import jsonutil
from common.sse import SSEDecoder
from tests.support.gemini_wire import assert_gemini_response
from tier1.http.parse import parse
from tier1.providers.base import ParsedRequest, Usage
from tier1.providers.openai_gemini import ChatToGemini, ChatToVertex

CASSETTE = (Path(__file__).parents[2] / "cassettes/gemini/chat_stream_tools.sse").read_bytes()
GEMINI = ChatToGemini(clock=lambda: 1_700_000_000.0)
ID = "chatcmpl-mZ4xaK2nO9yZ1MkPu7XG4Ak"


def _req(include_usage: bool) -> ParsedRequest:
    body: dict[str, Any] = {
        "model": "client-model",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "stream": True,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return parse("chat", jsonutil.dumps(body), {})


def _run(
    chunks: list[bytes], *, include_usage: bool = True, rename: bool = False
) -> tuple[bytes, Any]:
    stream = GEMINI.stream(_req(include_usage), rename=rename)
    out = b"".join(stream.feed(c) for c in chunks) + stream.close()
    return out, stream


def _events(out: bytes) -> list[Any]:
    events = SSEDecoder().feed(out)
    assert b"".join(e.raw for e in events) == out, "output must be whole SSE events"
    return [e.data.decode() if e.data == b"[DONE]" else jsonutil.loads(e.data) for e in events]


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gemini-2.5-flash",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def test_cassette_follows_googles_schema() -> None:
    events = SSEDecoder().feed(CASSETTE)
    assert len(events) == 4
    for ev in events:
        assert_gemini_response(jsonutil.loads(ev.data))


def test_recorded_stream_golden() -> None:
    out, stream = _run([CASSETTE])
    usage = {
        "prompt_tokens": 57,
        "completion_tokens": 65,
        "total_tokens": 122,
        "prompt_tokens_details": {"cached_tokens": 32},
        "completion_tokens_details": {"reasoning_tokens": 41},
    }
    assert _events(out) == [
        _chunk({"role": "assistant", "content": ""}, usage=None),
        _chunk(
            {
                "reasoning_content": "**Checking the forecast**\n\nThe user wants the weather in Paris."
            },
            usage=None,
        ),
        _chunk({"content": "Let me look that up"}, usage=None),
        _chunk({"content": " for you \u2014 one moment."}, usage=None),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_0",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"city":"Paris","unit":"c"}',
                        },
                        "extra_content": {
                            "google": {"thought_signature": "CiQBcsjafEx0c2lnbmF0dXJl"}
                        },
                    }
                ]
            },
            usage=None,
        ),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz":"Europe/Paris"}'},
                    }
                ]
            },
            usage=None,
        ),
        _chunk({}, "tool_calls", usage=None),
        {
            "id": ID,
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gemini-2.5-flash",
            "choices": [],
            "usage": usage,
        },
        "[DONE]",
    ]
    assert stream.usage == Usage(input=57, cached_input=32, output=65, reasoning=41)
    assert stream.model == "gemini-2.5-flash"


def test_usage_chunk_only_for_a_client_that_asked() -> None:
    out, stream = _run([CASSETTE], include_usage=False)
    events = _events(out)
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.usage is not None and stream.usage.input == 57  # still counted


def test_renamed_stream_carries_the_client_model() -> None:
    out, stream = _run([CASSETTE], rename=True)
    models = {e["model"] for e in _events(out) if isinstance(e, dict)}
    assert models == {"client-model"} and stream.model == "gemini-2.5-flash"


def test_vertex_streams_the_same() -> None:
    vertex = ChatToVertex("https://x.test", "p", "r", clock=lambda: 1_700_000_000.0)
    s = vertex.stream(_req(True), rename=False)
    assert s.feed(CASSETTE) + s.close() == _run([CASSETTE])[0]


def test_line_endings_do_not_matter() -> None:
    assert _run([CASSETTE.replace(b"\r\n", b"\n")])[0] == _run([CASSETTE])[0]


def _sse(*objs: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + jsonutil.dumps(o) + b"\r\n\r\n" for o in objs)


def test_a_cut_off_stream_gets_no_done() -> None:
    first = CASSETTE.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    events = _events(_run([first])[0])
    assert "[DONE]" not in events
    assert events[-1]["choices"][0]["delta"].get("reasoning_content")


def test_blocked_prompt_streams_a_content_filter_finish() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "b1",
    }
    assert_gemini_response(blocked)
    events = _events(_run([_sse(blocked)], include_usage=False)[0])
    assert [e if isinstance(e, str) else e["choices"][0] for e in events] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": "content_filter"},
        "[DONE]",
    ]


def test_finish_reasons_in_a_stream() -> None:
    text = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "index": 0}]}
    for reason, finish in (
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("STOP", "stop"),
    ):
        end = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": ""}]},
                    "finishReason": reason,
                    "index": 0,
                }
            ]
        }
        events = _events(_run([_sse(text, end)], include_usage=False)[0])
        assert events[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": finish}
        assert [e["choices"][0]["delta"] for e in events[:-2]] == [
            {"role": "assistant", "content": ""},
            {"content": "Hi"},
        ]


def test_an_error_event_ends_the_stream_in_openai_shape() -> None:
    text = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}],
        "responseId": "e",
    }
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    out = _run([_sse(text, error, text)])[0]
    events = _events(out)
    assert events[-1] == {
        "error": {
            "message": "The model is overloaded.",
            "type": "api_error",
            "param": None,
            "code": "unavailable",
        }
    }
    assert "[DONE]" not in events and len(events) == 3


def test_keepalives_and_junk_are_ignored() -> None:
    noisy = b": keep-alive\r\n\r\ndata: not json\r\n\r\n" + CASSETTE
    assert _run([noisy])[0] == _run([CASSETTE])[0]


@given(
    st.lists(st.integers(0, len(CASSETTE)), max_size=12),
    st.booleans(),
    st.booleans(),
)
def test_output_is_the_same_however_the_upstream_bytes_are_split(
    cuts: list[int], include_usage: bool, rename: bool
) -> None:
    points = [0, *sorted(cuts), len(CASSETTE)]
    chunks = [CASSETTE[a:b] for a, b in zip(points, points[1:], strict=False)]
    whole, _ = _run([CASSETTE], include_usage=include_usage, rename=rename)
    split, stream = _run(chunks, include_usage=include_usage, rename=rename)
    assert split == whole
    assert stream.usage == Usage(input=57, cached_input=32, output=65, reasoning=41)


_KEYS = st.sampled_from(
    ["candidates", "content", "parts", "text", "thought", "functionCall", "name", "args"]
    + ["finishReason", "index", "usageMetadata", "promptFeedback", "blockReason", "error"]
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.sampled_from(["STOP", "x", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=25,
)


@given(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=4), max_size=5))
def test_malformed_upstream_events_never_crash(objs: list[dict[str, Any]]) -> None:
    out, _ = _run([_sse(*objs)])
    for event in _events(out):  # whatever comes out is whole SSE events of JSON
        assert event == "[DONE]" or isinstance(event, dict)
    for obj in objs:
        GEMINI.response(_req(False), 200, jsonutil.dumps(obj), rename=False)
