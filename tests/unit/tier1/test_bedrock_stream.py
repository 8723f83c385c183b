"""Recorded ConverseStream answers (binary event-stream frames built by the test encoder,
checked against botocore's own decoder) → OpenAI chat.completion.chunk SSE."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EventStreamError
from hypothesis import given
from hypothesis import strategies as st

from common import jsonutil
from tests.support.bedrock import COMPLETION_ID, CREATED, MODEL, botocore_events, parsed, translator
from tests.support.eventstream import event, exception
from tier1.providers.base import StreamTranslator, Usage

HEAD = {"id": COMPLETION_ID, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL}


def _delta(index: int, **delta: Any) -> bytes:
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


def _tool_start(index: int, tool_id: str, name: str) -> bytes:
    return event(
        "contentBlockStart",
        {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": tool_id, "name": name}}},
    )


def _stop(index: int) -> bytes:
    return event("contentBlockStop", {"contentBlockIndex": index})


def _metadata(**usage: int) -> bytes:
    tokens = {"inputTokens": 10, "outputTokens": 2, "totalTokens": 12, **usage}
    return event("metadata", {"usage": tokens, "metrics": {"latencyMs": 50}})


START = event("messageStart", {"role": "assistant"})

TEXT = b"".join(
    [
        START,
        _delta(0, text="Hel"),
        _delta(0, text="lo"),
        _stop(0),
        event("messageStop", {"stopReason": "end_turn"}),
        _metadata(),
    ]
)

TOOL = b"".join(
    [
        START,
        _delta(0, reasoningContent={"text": "Need the weather."}),
        _delta(0, reasoningContent={"signature": "c2lnbmF0dXJl"}),
        _stop(0),
        _delta(1, text="Checking."),
        _stop(1),
        _tool_start(2, "tooluse_a", "get_weather"),
        _delta(2, toolUse={"input": '{"ci'}),
        _delta(2, toolUse={"input": 'ty": "Par'}),
        _delta(2, toolUse={"input": 'is"}'}),
        _stop(2),
        event("messageStop", {"stopReason": "tool_use"}),
        _metadata(cacheReadInputTokens=100, cacheWriteInputTokens=20),
    ]
)

PARALLEL = b"".join(
    [
        START,
        _tool_start(0, "tooluse_p", "get_weather"),
        _delta(0, toolUse={"input": '{"city": "Paris"}'}),
        _stop(0),
        _tool_start(1, "tooluse_r", "get_weather"),
        _delta(1, toolUse={"input": '{"city":'}),
        _delta(1, toolUse={"input": ' "Rome"}'}),
        _stop(1),
        event("messageStop", {"stopReason": "tool_use"}),
        _metadata(),
    ]
)

FAILED = b"".join(
    [
        START,
        _delta(0, text="Once upon"),
        exception("throttlingException", "Too many tokens, please wait before trying again."),
        _delta(0, text=" a time"),  # never reaches the client
    ]
)


def _run(data: bytes, chunks: list[bytes] | None = None, **body: Any) -> tuple[bytes, Any]:
    req = parsed({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **body})
    tap: StreamTranslator = translator().stream(req, rename=False)
    out = b"".join(tap.feed(c) for c in (chunks if chunks is not None else [data]))
    return out + tap.close(), tap


def _events(sse: bytes) -> list[Any]:
    assert sse.endswith(b"\n\n")
    out = []
    for block in sse[:-2].split(b"\n\n"):
        assert block.startswith(b"data: ")
        data = block[6:]
        out.append("[DONE]" if data == b"[DONE]" else jsonutil.loads(data))
    return out


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_recordings_decode_with_botocore() -> None:
    for data in (TEXT, TOOL, PARALLEL):
        kinds = [next(iter(e)) for e in botocore_events(data)]
        assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    with pytest.raises(EventStreamError, match="ThrottlingException|throttlingException"):
        botocore_events(FAILED)


def test_text_stream_golden() -> None:
    out, tap = _run(TEXT, stream=True)
    assert _events(out) == [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk({}, "stop"),
        "[DONE]",
    ]
    assert tap.usage == Usage(input=10, output=2) and tap.model == MODEL


def test_usage_chunk_only_when_the_client_asked() -> None:
    out, tap = _run(TEXT, stream=True, stream_options={"include_usage": True})
    events = _events(out)
    assert events[-2] == {
        **HEAD,
        "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
    assert events[-1] == "[DONE]" and events[:-2] == _events(_run(TEXT, stream=True)[0])[:-1]


def test_tool_call_with_arguments_split_across_deltas() -> None:
    out, tap = _run(TOOL, stream=True, stream_options={"include_usage": True})
    assert _events(out) == [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "Need the weather."}),
        _chunk({"content": "Checking."}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "tooluse_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Par'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]}),
        _chunk({}, "tool_calls"),
        {
            **HEAD,
            "choices": [],
            "usage": {
                "prompt_tokens": 130,
                "completion_tokens": 2,
                "total_tokens": 132,
                "prompt_tokens_details": {"cached_tokens": 100},
            },
        },
        "[DONE]",
    ]
    assert tap.usage == Usage(input=130, cached_input=100, output=2)


def _calls(sse: bytes) -> dict[int, dict[str, str]]:
    """Reassemble tool calls the way an OpenAI client does."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in _events(sse)[:-1]:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls", []):
                entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.get("id", "")
                entry["name"] += call.get("function", {}).get("name", "")
                entry["arguments"] += call.get("function", {}).get("arguments", "")
    return calls


def test_two_parallel_tool_calls() -> None:
    out, _ = _run(PARALLEL, stream=True)
    calls = _calls(out)
    assert {i: (c["id"], c["name"], jsonutil.loads(c["arguments"])) for i, c in calls.items()} == {
        0: ("tooluse_p", "get_weather", {"city": "Paris"}),
        1: ("tooluse_r", "get_weather", {"city": "Rome"}),
    }
    assert _events(out)[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_exception_event_ends_the_stream_with_an_openai_error() -> None:
    req = parsed({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True})
    tap = translator().stream(req, rename=False)
    out = tap.feed(FAILED)
    assert _events(out) == [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Once upon"}),
        {
            "error": {
                "message": "Too many tokens, please wait before trying again.",
                "type": "rate_limit_error",
                "param": None,
                "code": "ThrottlingException",
            }
        },
        "[DONE]",
    ]
    assert tap.feed(TEXT) == b"" and tap.close() == b"" and tap.usage is None


def test_a_cut_stream_is_reported_not_passed_off_as_complete() -> None:
    cut = TEXT.index(event("messageStop", {"stopReason": "end_turn"}))
    out, _ = _run(TEXT[: cut + 7], stream=True)
    events = _events(out)
    assert events[-2]["error"]["code"] == "upstream_truncated" and events[-1] == "[DONE]"
    assert [e["choices"][0]["delta"] for e in events[:3]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
    ]


def test_a_corrupt_frame_ends_the_stream() -> None:
    broken = bytearray(TEXT)
    broken[len(START) + 20] ^= 0xFF  # inside the second message: its CRC no longer matches
    out, _ = _run(bytes(broken), stream=True)
    events = _events(out)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-2]["error"]["message"] == "the upstream event stream is corrupt"
    assert events[-1] == "[DONE]" and len(events) == 3


RECORDINGS = [TEXT, TOOL, PARALLEL, FAILED]


@given(
    st.sampled_from(range(len(RECORDINGS))),
    st.lists(st.integers(0, max(map(len, RECORDINGS))), max_size=12),
    st.booleans(),
)
def test_output_is_the_same_however_the_bytes_are_split(
    which: int, cuts: list[int], include_usage: bool
) -> None:
    data = RECORDINGS[which]
    points = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    chunks = [data[a:b] for a, b in zip(points, points[1:], strict=False)]
    options: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": include_usage}}
    whole, whole_tap = _run(data, **options)
    split, split_tap = _run(data, chunks, **options)
    assert split == whole and split_tap.usage == whole_tap.usage


def test_one_byte_at_a_time() -> None:
    data = TOOL
    chunks = [data[i : i + 1] for i in range(len(data))]
    assert _run(data, chunks, stream=True)[0] == _run(data, stream=True)[0]
