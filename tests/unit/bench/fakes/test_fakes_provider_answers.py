"""Anthropic, Bedrock and Gemini answers: event order, framing, tool calls, cuts, errors."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st

from bench.fakes import anthropic_answers, bedrock_answers, eventstream, gemini_answers
from bench.fakes.turns import TOOL_INPUT, Turn, make_turn, tool_fragments


def turn(chunks: int = 3, tool: str | None = None, **kw: Any) -> Turn:
    kw.setdefault("max_tokens", None)
    kw.setdefault("prompt_tokens", 4)
    kw.setdefault("usage", {})
    return make_turn("m-1", chunks=chunks, tool=tool, **kw)


def sse(events: list[bytes]) -> list[tuple[str, Any]]:
    out = []
    for event in events:
        assert event.endswith(b"\n\n") and event.count(b"\n\n") == 1
        name, data = event[:-2].split(b"\n")
        out.append((name.removeprefix(b"event: ").decode(), orjson.loads(data[6:])))
    return out


def frames(raw: bytes) -> list[tuple[dict[str, Any], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(m.headers, m.payload) for m in buffer]


def test_turn_usage_overrides_and_cut() -> None:
    t = make_turn(
        "m", chunks=5, max_tokens=2, prompt_tokens=9, tool="f", usage={"cached_tokens": 3}
    )
    assert (t.text, t.cut, t.tool, t.input_tokens, t.output_tokens, t.total_tokens) == (
        "This is", True, None, 9, 2, 11,
    )  # fmt: skip
    assert t.cached_tokens == 3
    o = make_turn(
        "m",
        chunks=1,
        max_tokens=None,
        prompt_tokens=1,
        tool=None,
        usage={"prompt_tokens": 50, "total_tokens": 7},
    )
    assert (o.input_tokens, o.output_tokens, o.total_tokens) == (50, 1, 7)
    assert "".join(tool_fragments()) == orjson.dumps(TOOL_INPUT).decode()
    assert len(tool_fragments()) == 3


# --- anthropic ---------------------------------------------------------------------------


def test_anthropic_stream_is_the_documented_sequence() -> None:
    stream = anthropic_answers.stream(turn(2, tool="lookup"), "msg_1")
    events = sse(stream.events)
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "ping",
        "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert (start["id"], start["content"], start["stop_reason"]) == ("msg_1", [], None)
    assert [d["delta"]["text"] for n, d in events[3:5]] == ["This", " is"]
    tool = events[6][1]["content_block"]
    assert (tool["type"], tool["name"], tool["input"], events[6][1]["index"]) == (
        "tool_use",
        "lookup",
        {},
        1,
    )
    partial = "".join(d["delta"]["partial_json"] for _, d in events[7:10])
    assert orjson.loads(partial) == TOOL_INPUT
    assert events[11][1]["delta"]["stop_reason"] == "tool_use"
    assert events[11][1]["usage"] == {"output_tokens": 2}
    assert (stream.head, stream.stall_index(1), stream.stall_index(9)) == (3, 4, 5)


def test_anthropic_message_and_stop_reasons() -> None:
    body = anthropic_answers.message(turn(5, max_tokens=2, tool="f"), "msg_9")
    assert body["content"] == [{"type": "text", "text": "This is"}]
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"] == {
        "input_tokens": 4, "output_tokens": 2, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }  # fmt: skip
    only_tool = anthropic_answers.message(turn(0, tool="f"), "msg_2")
    assert [b["type"] for b in only_tool["content"]] == ["tool_use"]
    assert only_tool["content"][0]["input"] == TOOL_INPUT
    assert anthropic_answers.message(turn(0), "msg_3")["content"] == [{"type": "text", "text": ""}]


def test_anthropic_stream_exception_ends_after_the_text() -> None:
    events = sse(anthropic_answers.stream(turn(2), "msg_1", "overloaded_error").events)
    assert [n for n, _ in events][-2:] == ["content_block_delta", "error"]
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


@pytest.mark.parametrize(
    ("status", "type_"),
    [(400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
     (404, "not_found_error"), (429, "rate_limit_error"), (500, "api_error"),
     (529, "overloaded_error"), (502, "api_error"), (418, "invalid_request_error")],
)  # fmt: skip
def test_anthropic_error_types(status: int, type_: str) -> None:
    body = orjson.loads(anthropic_answers.scripted_error(status))
    assert body["type"] == "error" and body["error"]["type"] == type_


# --- bedrock -----------------------------------------------------------------------------


def test_eventstream_frames_decode_with_botocore() -> None:
    raw = eventstream.event("contentBlockDelta", {"delta": {"text": "é"}}) + eventstream.exception(
        "throttlingException", "slow down"
    )
    (h1, p1), (h2, p2) = frames(raw)
    assert h1 == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert orjson.loads(p1) == {"delta": {"text": "é"}}
    assert h2[":message-type"] == "exception" and h2[":exception-type"] == "throttlingException"
    assert orjson.loads(p2) == {"message": "slow down"}


@given(
    st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=4),
    st.binary(max_size=200),
)
def test_eventstream_round_trips(headers: dict[str, str], payload: bytes) -> None:
    [(got, body)] = frames(eventstream.encode(headers.items(), payload))
    assert got == headers and body == payload


def test_converse_stream_frames() -> None:
    stream = bedrock_answers.converse_stream(turn(2, tool="f"), "id1", 12)
    decoded = frames(b"".join(stream.events))
    kinds = [h[":event-type"] for h, _ in decoded]
    assert kinds == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop",
        "contentBlockStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta",
        "contentBlockStop", "messageStop", "metadata",
    ]  # fmt: skip
    payloads = [orjson.loads(p) for _, p in decoded]
    assert payloads[4] == {
        "contentBlockIndex": 1,
        "start": {"toolUse": {"toolUseId": "tooluse_id1", "name": "f"}},
    }
    fragments = "".join(p["delta"]["toolUse"]["input"] for p in payloads[5:8])
    assert orjson.loads(fragments) == TOOL_INPUT
    assert payloads[9] == {"stopReason": "tool_use"}
    assert payloads[10] == {
        "usage": {"inputTokens": 4, "outputTokens": 2, "totalTokens": 6},
        "metrics": {"latencyMs": 12},
    }
    assert stream.stall_index(1) == 2


def test_converse_stream_exception_frame() -> None:
    stream = bedrock_answers.converse_stream(turn(3), "i", 1, exception="ThrottlingException")
    decoded = frames(b"".join(stream.events))
    assert [h.get(":event-type") for h, _ in decoded] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockDelta",
        None,
    ]
    assert decoded[-1][0][":exception-type"] == "throttlingException"


def test_invoke_stream_wraps_anthropic_events() -> None:
    stream = bedrock_answers.invoke_stream(turn(1), "msg_5", 7)
    events = [
        orjson.loads(base64.b64decode(orjson.loads(p)["bytes"]))
        for _, p in frames(b"".join(stream.events))
    ]
    assert [e["type"] for e in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 1


def test_converse_body_and_errors() -> None:
    body = orjson.loads(
        bedrock_answers.converse_body(turn(2, tool="f", usage={"cached_tokens": 5}), "x", 3)
    )
    assert body["output"]["message"]["content"] == [
        {"text": "This is"},
        {"toolUse": {"toolUseId": "tooluse_x", "name": "f", "input": TOOL_INPUT}},
    ]
    assert body["stopReason"] == "tool_use"
    assert body["usage"]["cacheReadInputTokens"] == 5 and body["metrics"] == {"latencyMs": 3}
    for status, name in [(400, "ValidationException"), (403, "AccessDeniedException"), (404, "ResourceNotFoundException"),
                         (408, "ModelTimeoutException"), (429, "ThrottlingException"), (500, "InternalServerException"),
                         (503, "ServiceUnavailableException"), (502, "InternalServerException")]:  # fmt: skip
        raw, headers = bedrock_answers.scripted_error(status)
        assert headers == {"x-amzn-errortype": name} and set(orjson.loads(raw)) == {"message"}


# --- gemini ------------------------------------------------------------------------------


def test_gemini_sse_uses_crlf_and_usage_on_the_last_chunk() -> None:
    stream = gemini_answers.generate_stream(turn(3, tool="f"), "r1")
    assert all(e.startswith(b"data: ") and e.endswith(b"}\r\n\r\n") for e in stream.events)
    chunks = [orjson.loads(e[6:]) for e in stream.events]
    assert [c["candidates"][0]["content"]["parts"][0].get("text") for c in chunks[:3]] == [
        "This",
        " is",
        " a",
    ]
    assert chunks[3]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": TOOL_INPUT}}
    ]
    assert all("usageMetadata" not in c for c in chunks[:-1])
    assert chunks[-1]["usageMetadata"] == {
        "promptTokenCount": 4,
        "candidatesTokenCount": 3,
        "totalTokenCount": 7,
    }
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert all(c["modelVersion"] == "m-1" and c["responseId"] == "r1" for c in chunks)


def test_gemini_json_array_stream_and_exception() -> None:
    stream = gemini_answers.generate_stream(turn(2, max_tokens=1), "r", sse=False)
    array = orjson.loads(b"".join(stream.events))
    assert len(array) == 1 and array[0]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    failed = gemini_answers.generate_stream(turn(2), "r", exception="RESOURCE_EXHAUSTED")
    last = orjson.loads(failed.events[-1][6:])
    assert last["error"]["code"] == 429 and last["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert len(failed.events) == 3


def test_gemini_body_and_errors() -> None:
    body = orjson.loads(
        gemini_answers.generate_body(
            turn(1, usage={"cached_tokens": 2, "reasoning_tokens": 1}), "r"
        )
    )
    assert body["candidates"] == [
        {
            "content": {"role": "model", "parts": [{"text": "This"}]},
            "index": 0,
            "finishReason": "STOP",
        }
    ]
    assert body["usageMetadata"]["cachedContentTokenCount"] == 2
    assert body["usageMetadata"]["thoughtsTokenCount"] == 1
    for code, status in [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"),
                         (404, "NOT_FOUND"), (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE")]:  # fmt: skip
        error = orjson.loads(gemini_answers.scripted_error(code))["error"]
        assert (error["code"], error["status"]) == (code, status) and error["message"]
