"""Anthropic Messages SSE → OpenAI chunk SSE: a stream recorded from the documented
event sequence (thinking, text, two parallel tool calls with split JSON arguments,
cache usage), errors mid-stream, cut streams, and split invariance. The openai SDK
assembles the output to prove clients can read it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import jsonutil
from tests.support.anthropic_wire import openai_client, run_stream, split, sse_events
from tier1.http.parse import parse
from tier1.providers.base import ParsedRequest, StreamTranslator, Translator
from tier1.providers.openai_anthropic import ChatToMessages
from tier1.providers.openai_vertex_anthropic import ChatToVertexMessages

NOW = 1_700_000_000.0
TRANSLATORS: list[Translator] = [
    ChatToMessages("https://api.anthropic.com", 1024, clock=lambda: NOW),
    ChatToVertexMessages("https://v.test", "p", "us-east5", 1024, clock=lambda: NOW),
]


def _req(include_usage: bool) -> ParsedRequest:
    body = {
        "model": "asked",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": include_usage},
    }
    return parse("chat", jsonutil.dumps(body), {})


# As Anthropic sends it: `event:` lines, a ping, a signature before the thinking block
# stops, an empty first input_json_delta, and arguments split mid-token.
STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_01X","type":"message","role":"assistant","content":[],"model":"claude-sonnet-x","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":10,"cache_read_input_tokens":100,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"two cities."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Checking "}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"both \xc3\xa9t\xc3\xa9s."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_A","name":"weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"city\\": \\"Pa"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ris\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_B","name":"weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\\"ci"}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"ty\\": \\"Oslo\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"""


def _chunk(delta: dict[str, Any], finish: str | None = None, model: str = "claude-sonnet-x") -> Any:
    return {
        "id": "msg_01X",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _call(n: int, fragment: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": n, "function": {"arguments": fragment}}]}


def _start(n: int, call_id: str) -> dict[str, Any]:
    return {
        "tool_calls": [
            {
                "index": n,
                "id": call_id,
                "type": "function",
                "function": {"name": "weather", "arguments": ""},
            }
        ]
    }


USAGE = {
    "prompt_tokens": 135,
    "completion_tokens": 89,
    "total_tokens": 224,
    "prompt_tokens_details": {"cached_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 0},
}

EXPECTED = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"reasoning_content": "The user wants "}),
    _chunk({"reasoning_content": "two cities."}),
    _chunk({"content": "Checking "}),
    _chunk({"content": "both étés."}),
    _chunk(_start(0, "toolu_A")),
    _chunk(_call(0, '{"city": "Pa')),
    _chunk(_call(0, 'ris"}')),
    _chunk(_start(1, "toolu_B")),
    _chunk(_call(1, '{"ci')),
    _chunk(_call(1, 'ty": "Oslo"}')),
    _chunk({}, "tool_calls"),
]


def _run(translator: Translator, chunks: list[bytes], **kw: Any) -> tuple[bytes, StreamTranslator]:
    tap = translator.stream(_req(kw.get("include_usage", True)), rename=kw.get("rename", False))
    out = b"".join(tap.feed(c) for c in chunks) + tap.close()
    return out, tap


@pytest.mark.parametrize("translator", TRANSLATORS)
def test_golden_stream(translator: Translator) -> None:
    out, tap = _run(translator, [STREAM])
    events = list(sse_events(out))
    assert events == [*EXPECTED, {**_chunk({}), "choices": [], "usage": USAGE}]
    assert out.endswith(b"\n\ndata: [DONE]\n\n") and out.count(b"[DONE]") == 1
    assert tap.model == "claude-sonnet-x"
    assert tap.usage is not None
    u = tap.usage
    assert (u.input, u.cached_input, u.output) == (135, 100, 89)


def test_usage_chunk_only_when_the_client_asked() -> None:
    out, tap = _run(TRANSLATORS[0], [STREAM], include_usage=False)
    assert list(sse_events(out)) == EXPECTED and out.endswith(b"data: [DONE]\n\n")
    assert tap.usage is not None and tap.usage.output == 89  # still counted for limits


def test_renamed_stream_shows_the_client_model() -> None:
    out, tap = _run(TRANSLATORS[0], [STREAM], rename=True)
    assert {e["model"] for e in sse_events(out)} == {"asked"}
    assert tap.model == "claude-sonnet-x"


def test_the_openai_sdk_assembles_the_stream() -> None:
    out, _ = _run(TRANSLATORS[0], [STREAM])
    client = openai_client(200, out, stream=True)
    with client.chat.completions.stream(
        model="asked", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Checking both étés."
    assert message.tool_calls is not None
    assert [
        (c.id, c.function.name, jsonutil.loads(c.function.arguments)) for c in message.tool_calls
    ] == [
        ("toolu_A", "weather", {"city": "Paris"}),
        ("toolu_B", "weather", {"city": "Oslo"}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.prompt_tokens_details is not None
    assert final.usage.prompt_tokens_details.cached_tokens == 100


def _events(*objs: dict[str, Any]) -> bytes:
    return b"".join(
        b"event: " + o["type"].encode() + b"\ndata: " + jsonutil.dumps(o) + b"\n\n" for o in objs
    )


START: dict[str, Any] = {
    "type": "message_start",
    "message": {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-x",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    },
}
TEXT = _events(
    START,
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
)


def test_error_event_ends_the_stream_without_done() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    late = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}
    out, _ = _run(TRANSLATORS[0], [TEXT + _events(error, late, {"type": "message_stop"})])
    events = list(sse_events(out))
    assert events[-1] == {
        "error": {
            "message": "Overloaded",
            "type": "api_error",
            "param": None,
            "code": "overloaded_error",
        }
    }
    assert b"[DONE]" not in out and b'"!"' not in out


def test_a_cut_stream_never_looks_complete() -> None:
    out, tap = _run(TRANSLATORS[0], [TEXT])
    assert b"[DONE]" not in out
    assert list(sse_events(out))[-1]["error"]["code"] == "upstream_incomplete"
    assert tap.usage is not None and tap.usage.input == 5


def test_message_stop_without_message_delta_still_finishes() -> None:
    out, _ = _run(TRANSLATORS[0], [TEXT + _events({"type": "message_stop"})], include_usage=False)
    assert [e["choices"][0]["finish_reason"] for e in sse_events(out)] == [None, None, "stop"]
    assert out.endswith(b"data: [DONE]\n\n")


def test_a_tool_block_with_its_input_at_start() -> None:
    block = {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}
    out, _ = _run(
        TRANSLATORS[0],
        [
            _events(
                START,
                {"type": "content_block_start", "index": 0, "content_block": block},
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use"},
                    "usage": {"output_tokens": 3},
                },
                {"type": "message_stop"},
            )
        ],
        include_usage=False,
    )
    deltas = [e["choices"][0]["delta"] for e in sse_events(out)]
    assert deltas[2] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}]}


def test_unknown_events_and_blocks_are_skipped() -> None:
    odd = _events(
        START,
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "server_tool_use",
                "id": "s",
                "name": "web_search",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "redacted_thinking", "data": "x"},
        },
        {"type": "some_future_event"},
        {"type": "message_stop"},
    )
    out, _ = _run(TRANSLATORS[0], [odd + b"data: not json\n\n"], include_usage=False)
    assert len(list(sse_events(out))) == 2  # the role chunk and the finish chunk


@given(
    st.lists(st.integers(0, len(STREAM)), max_size=12),
    st.booleans(),
    st.booleans(),
    st.sampled_from([0, 1]),
)
def test_split_invariance(cuts: list[int], include_usage: bool, rename: bool, which: int) -> None:
    translator = TRANSLATORS[which]

    def new() -> StreamTranslator:
        return translator.stream(_req(include_usage), rename=rename)

    assert run_stream(new, split(STREAM, cuts)) == run_stream(new, [STREAM])


@given(st.lists(st.integers(0, len(TEXT)), max_size=6))
def test_split_invariance_of_a_cut_stream(cuts: list[int]) -> None:
    def new() -> StreamTranslator:
        return TRANSLATORS[0].stream(_req(True), rename=False)

    assert run_stream(new, split(TEXT, cuts)) == run_stream(new, [TEXT])


def test_message_delta_usage_updates_only_the_fields_it_carries() -> None:
    start: dict[str, Any] = {
        **START,
        "message": {
            **START["message"],
            "usage": {"input_tokens": 5, "cache_read_input_tokens": 40, "output_tokens": 1},
        },
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {
            "input_tokens": 6,
            "cache_read_input_tokens": None,
            "output_tokens": 9,
            "output_tokens_details": {"thinking_tokens": 4},
        },
    }
    _, tap = _run(TRANSLATORS[0], [_events(start, delta, {"type": "message_stop"})])
    assert tap.usage is not None
    assert (tap.usage.input, tap.usage.cached_input, tap.usage.output, tap.usage.reasoning) == (
        46,
        40,
        9,
        4,
    )
