"""Answer bodies: OpenAI's SSE framing, usage placement, templates, embeddings, errors."""

from __future__ import annotations

import array
import base64
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from bench.fakes import answers
from bench.fakes.answers import Generation

USAGE = answers.usage_dict(3, 5, {}, details=True)


def parse(events: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for event in events:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        assert event.count(b"\n\n") == 1
        data = event[6:-2]
        out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


def test_chat_stream_with_usage_is_framed_like_openai() -> None:
    gen = Generation("chat", "gpt-4o", tokens=3)
    chunks = parse(answers.completion_events(gen, id_="chatcmpl-1", created=7, usage=USAGE))
    assert chunks[-1] == "[DONE]"
    first, *content, finish, last = chunks[:-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == "This is a"
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert last["choices"] == [] and last["usage"] == USAGE
    for chunk in chunks[:-2]:
        assert chunk["usage"] is None  # null on every chunk but the last
    for chunk in chunks[:-1]:
        assert (chunk["id"], chunk["object"], chunk["created"], chunk["model"]) == (
            "chatcmpl-1",
            "chat.completion.chunk",
            7,
            "gpt-4o",
        )


def test_chat_stream_without_usage_has_no_usage_at_all() -> None:
    gen = Generation("chat", "m", tokens=2, choices=2, finish_reason="length")
    chunks = parse(answers.completion_events(gen, id_="c", created=1, usage=None))
    assert len(chunks) == 2 + 2 * 2 + 2 + 1
    assert all("usage" not in c for c in chunks[:-1])
    assert [c["choices"][0]["index"] for c in chunks[:-1]] == [0, 1, 0, 1, 0, 1, 0, 1]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_text_stream_and_body() -> None:
    gen = Generation("text", "davinci", tokens=2)
    chunks = parse(answers.completion_events(gen, id_="cmpl-1", created=1, usage=USAGE))
    assert [c["choices"][0]["text"] for c in chunks[:3]] == ["This", " is", ""]
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == [] and chunks[3]["object"] == "text_completion"
    body = orjson.loads(answers.completion_body(gen, id_="cmpl-2", created=2, usage=USAGE))
    assert body["object"] == "text_completion"
    assert body["choices"] == [
        {"text": "This is", "index": 0, "logprobs": None, "finish_reason": "stop"}
    ]


def test_templates_fill_per_request_values() -> None:
    gen = Generation("chat", 'odd"model@@fake:id@', tokens=1)
    one = orjson.loads(answers.completion_body(gen, id_="a", created=1, usage=USAGE))
    two = orjson.loads(answers.completion_body(gen, id_="b", created=2, usage={"x": 1}))
    assert (one["id"], one["created"], one["usage"]) == ("a", 1, USAGE)
    assert (two["id"], two["created"], two["usage"]) == ("b", 2, {"x": 1})
    assert one["model"] == 'odd"model@@fake:id@'
    assert one["choices"][0]["message"] == {"role": "assistant", "content": "This"}


def test_stall_index_counts_content_chunks() -> None:
    assert answers.stall_index(Generation("chat", "m", tokens=5), 2) == 3
    assert answers.stall_index(Generation("chat", "m", tokens=5, choices=2), 2) == 6
    assert answers.stall_index(Generation("chat", "m", tokens=1), 9) == 2  # before finish
    assert answers.stall_index(Generation("text", "m", tokens=5), 2) == 2


@given(
    st.lists(
        st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
        max_size=6,
    )
)
def test_sse_events_cut_after_blank_lines(datas: list[bytes]) -> None:
    body = b"".join(b"data: " + d + b"\n\n" for d in datas) + b"data: tail"
    events = answers.sse_events(body)
    assert b"".join(events) == body
    assert len(events) == len(datas) + 1


def test_usage_overrides() -> None:
    usage = answers.usage_dict(
        10, 5, {"prompt_tokens": 7, "cached_tokens": 4, "reasoning_tokens": 2}, details=True
    )
    assert usage == {
        "prompt_tokens": 7,
        "completion_tokens": 5,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert answers.usage_dict(1, 2, {"total_tokens": 9}, details=False) == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 9,
    }


def test_embeddings_are_deterministic_and_base64_is_float32() -> None:
    floats = orjson.loads(
        answers.embedding_body("e", ["a", [1, 2]], dims=4, encoding="float", prompt_tokens=3)
    )
    b64 = orjson.loads(
        answers.embedding_body("e", ["a"], dims=4, encoding="base64", prompt_tokens=1)
    )
    vec = floats["data"][0]["embedding"]
    assert len(vec) == 4 and vec == answers.embedding_vector("a", 4)
    assert floats["data"][1]["index"] == 1 and floats["usage"] == {
        "prompt_tokens": 3,
        "total_tokens": 3,
    }
    decoded = array.array("f", base64.b64decode(b64["data"][0]["embedding"]))
    assert [round(x, 5) for x in decoded] == [round(x, 5) for x in vec]


def test_error_bodies() -> None:
    assert orjson.loads(answers.openai_error("m", "t", "p", "c")) == {
        "error": {"message": "m", "type": "t", "param": "p", "code": "c"}
    }
    assert orjson.loads(answers.azure_error("401", "no")) == {
        "error": {"code": "401", "message": "no"}
    }
    assert answers.scripted_error(429)[1:] == ("requests", "rate_limit_exceeded")
    assert answers.scripted_error(502)[1] == "server_error"
    assert answers.scripted_error(418)[1] == "invalid_request_error"
    models = orjson.loads(answers.model_list(["a"], "me"))
    assert models["data"][0] == {
        "id": "a",
        "object": "model",
        "created": answers.MODELS_CREATED,
        "owned_by": "me",
    }
