"""The Anthropic Messages ingress over OpenAI-chat backends, streaming: a recorded OpenAI
chunk stream (reasoning, text, two parallel tool calls with split arguments, the final
usage chunk) → Anthropic events, assembled by the real anthropic SDK; errors, cut
streams and split invariance."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from common import jsonutil
from tests.support.anthropic_wire import anthropic_client, run_stream, split
from tier1.providers.anthropic_openai import ChatStreamToMessagesStream


def _c(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    obj = {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-up-2025",
        "choices": choices,
        **extra,
    }
    return b"data: " + jsonutil.dumps(obj) + b"\n\n"


def _tc(i: int, args: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": i, "function": {"arguments": args}}
    if call_id:
        call |= {"id": call_id, "type": "function"}
        call["function"]["name"] = name
    return {"tool_calls": [call]}


OPENAI_STREAM = b"".join(
    [
        _c({"role": "assistant", "content": ""}),
        _c({"reasoning_content": "Two "}),
        _c({"reasoning_content": "cities."}),
        _c({"content": "Checking "}),
        _c({"content": "both."}),
        _c(_tc(0, "", "call_A", "weather")),
        _c(_tc(0, '{"city": "Pa')),
        _c(_tc(0, 'ris"}')),
        _c(_tc(1, '{"ci', "call_B", "weather")),
        _c(_tc(1, 'ty": "Oslo"}')),
        _c({}, "tool_calls"),
        _c(
            None,
            usage={
                "prompt_tokens": 120,
                "completion_tokens": 30,
                "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 100},
            },
        ),
        b"data: [DONE]\n\n",
    ]
)


def _ev(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"type": kind, **fields}


def _delta(index: int, **delta: Any) -> tuple[str, dict[str, Any]]:
    return _ev("content_block_delta", index=index, delta=delta)


EXPECTED_EVENTS = [
    _ev(
        "message_start",
        message={
            "id": "chatcmpl-9",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-alias",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        },
    ),
    _ev(
        "content_block_start",
        index=0,
        content_block={"type": "thinking", "thinking": "", "signature": ""},
    ),
    _delta(0, type="thinking_delta", thinking="Two "),
    _delta(0, type="thinking_delta", thinking="cities."),
    _ev("content_block_stop", index=0),
    _ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
    _delta(1, type="text_delta", text="Checking "),
    _delta(1, type="text_delta", text="both."),
    _ev("content_block_stop", index=1),
    _ev(
        "content_block_start",
        index=2,
        content_block={"type": "tool_use", "id": "call_A", "name": "weather", "input": {}},
    ),
    _delta(2, type="input_json_delta", partial_json='{"city": "Pa'),
    _delta(2, type="input_json_delta", partial_json='ris"}'),
    _ev("content_block_stop", index=2),
    _ev(
        "content_block_start",
        index=3,
        content_block={"type": "tool_use", "id": "call_B", "name": "weather", "input": {}},
    ),
    _delta(3, type="input_json_delta", partial_json='{"ci'),
    _delta(3, type="input_json_delta", partial_json='ty": "Oslo"}'),
    _ev("content_block_stop", index=3),
    _ev(
        "message_delta",
        delta={"stop_reason": "tool_use", "stop_sequence": None},
        usage={"input_tokens": 20, "cache_read_input_tokens": 100, "output_tokens": 30},
    ),
    _ev("message_stop"),
]


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if block:
            event, data = block.split(b"\n")
            assert event.startswith(b"event: ") and data.startswith(b"data: ")
            obj = jsonutil.loads(data[6:])
            assert obj["type"] == event[7:].decode()  # the event line names the type
            out.append((obj["type"], obj))
    return out


def _stream(chunks: list[bytes]) -> tuple[bytes, ChatStreamToMessagesStream]:
    tap = ChatStreamToMessagesStream(model="claude-alias")
    return b"".join(tap.feed(c) for c in chunks) + tap.close(), tap


def test_golden_stream() -> None:
    out, tap = _stream([OPENAI_STREAM])
    assert _events(out) == EXPECTED_EVENTS
    assert tap.model == "gpt-up-2025"
    assert tap.usage is not None and (
        tap.usage.input,
        tap.usage.cached_input,
        tap.usage.output,
    ) == (120, 100, 30)


def test_the_anthropic_sdk_assembles_the_stream() -> None:
    out, _ = _stream([OPENAI_STREAM])
    client = anthropic_client(200, out, stream=True)
    with client.messages.stream(
        model="claude-alias", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        message = stream.get_final_message()
    kinds = [(b.type, getattr(b, "input", None)) for b in message.content]
    assert kinds == [
        ("thinking", None),
        ("text", None),
        ("tool_use", {"city": "Paris"}),
        ("tool_use", {"city": "Oslo"}),
    ]
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 30 and message.usage.input_tokens == 20


def test_usage_known_at_start_is_reported_in_message_start() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}
    out, _ = _stream([_c({"content": "hi"}, usage=usage) + _c({}, "stop") + b"data: [DONE]\n\n"])
    events = _events(out)
    assert events[0][1]["message"]["usage"] == {"input_tokens": 7, "output_tokens": 0}
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_error_chunk_becomes_an_error_event() -> None:
    error = b'data: {"error": {"message": "boom", "type": "server_error", "code": 500}}\n\n'
    out, _ = _stream([_c({"content": "hi"}) + error + _c({"content": "late"})])
    events = _events(out)
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "boom"}},
    )
    assert b"late" not in out and b"message_stop" not in out


def test_a_cut_stream_ends_with_an_error_event() -> None:
    out, _ = _stream([_c({"content": "hi"})])
    assert _events(out)[-1][0] == "error" and b"message_stop" not in out


def test_a_finished_stream_without_done_is_completed() -> None:
    out, _ = _stream([_c({"content": "hi"}) + _c({}, "length")])
    events = _events(out)
    assert [k for k, _ in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_an_empty_answer_has_no_blocks() -> None:
    out, _ = _stream(
        [_c({"role": "assistant", "content": ""}) + _c({}, "stop") + b"data: [DONE]\n\n"]
    )
    assert [k for k, _ in _events(out)] == ["message_start", "message_delta", "message_stop"]


@given(st.lists(st.integers(0, len(OPENAI_STREAM)), max_size=12))
def test_split_invariance(cuts: list[int]) -> None:
    def new() -> ChatStreamToMessagesStream:
        return ChatStreamToMessagesStream(model="claude-alias")

    assert run_stream(new, split(OPENAI_STREAM, cuts)) == run_stream(new, [OPENAI_STREAM])
