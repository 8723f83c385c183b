"""The OpenAI request shapes the fakes enforce: what passes, what is a 400 and how."""

from __future__ import annotations

from typing import Any

import pytest

from bench.fakes.openai_shapes import (
    ShapeError,
    estimate_tokens,
    validate_chat,
    validate_completion,
    validate_embedding,
)

USER = {"role": "user", "content": "hello world!"}


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [USER], **fields}


def test_valid_chat_keeps_unknown_vendor_fields() -> None:
    req = validate_chat(
        chat(
            messages=[
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
                {"role": "tool", "content": "42", "tool_call_id": "c1"},
            ],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=5,
            n=2,
            temperature=1,
            tools=[{"type": "function", "function": {"name": "get_x", "parameters": {}}}],
            vendor_x={"anything": [1, 2]},
        )
    )  # fmt: skip
    assert req.include_usage
    assert req.model_extra == {"vendor_x": {"anything": [1, 2]}}
    assert req.prompt_tokens() == (8 + 2 + 2 + 3) // 4


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [USER]}, None, None),
        (chat(model=None), None, None),
        (chat(model=3), "model", "invalid_type"),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        (chat(messages=[]), "messages", "empty_array"),
        (chat(messages="hi"), "messages", "invalid_type"),
        (chat(messages=["hi"]), "messages[0]", "invalid_type"),
        (chat(messages=[{"role": "bot", "content": "x"}]), "messages[0].role", "invalid_value"),
        (chat(messages=[{"content": "x"}]), "messages[0].role", "missing_required_parameter"),
        (chat(messages=[{"role": "user"}]), "messages[0]", "invalid_value"),
        (chat(messages=[{"role": "assistant", "content": None}]), "messages[0]", "invalid_value"),
        (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content", "invalid_value"),
        (chat(messages=[{"role": "user", "content": [{"text": "x"}]}]), "messages[0].content", "invalid_value"),
        (chat(messages=[{"role": "tool", "content": "x"}]), "messages[0]", "invalid_value"),
        (chat(stream="yes"), "stream", "invalid_type"),
        (chat(stream_options={"include_usage": True}), "stream_options", "invalid_value"),
        (chat(stream=False, stream_options={"include_usage": True}), "stream_options", "invalid_value"),
        (chat(stream=True, stream_options={"include_usage": "yes"}), "stream_options.include_usage", "invalid_type"),
        (chat(stream=True, stream_options=True), "stream_options", "invalid_type"),
        (chat(max_tokens=0), "max_tokens", "invalid_value"),
        (chat(max_tokens="5"), "max_tokens", "invalid_type"),
        (chat(max_tokens=True), "max_tokens", "invalid_type"),
        (chat(max_completion_tokens=-1), "max_completion_tokens", "invalid_value"),
        (chat(n=0), "n", "invalid_value"),
        (chat(temperature=3), "temperature", "invalid_value"),
        (chat(tools=[{"type": "retrieval"}]), "tools[0].type", "invalid_value"),
        (chat(tools=[{"type": "function", "function": {"name": "bad name"}}]), "tools[0].function.name", "invalid_value"),
        (chat(tools=[{"type": "function"}]), "tools[0].function", "missing_required_parameter"),
        ([USER], None, "invalid_type"),
    ],
)  # fmt: skip
def test_bad_chats(body: Any, param: str | None, code: str | None) -> None:
    with pytest.raises(ShapeError) as info:
        validate_chat(body)
    assert (info.value.param, info.value.code) == (param, code)
    assert info.value.message


def test_missing_model_message_is_openais() -> None:
    with pytest.raises(ShapeError, match="you must provide a model parameter"):
        validate_chat({"messages": [USER]})


def test_azure_takes_the_model_from_the_path() -> None:
    assert validate_chat({"messages": [USER]}, model_required=False).model is None


@pytest.mark.parametrize("prompt", ["hi", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_completion_prompts(prompt: Any) -> None:
    req = validate_completion({"model": "m", "prompt": prompt, "n": 2})
    assert len(req.prompts()) == (2 if prompt in (["a", "b"], [[1, 2], [3]]) else 1)


@pytest.mark.parametrize("prompt", [None, 5, [], ["a", 1], [[1], ["x"]]])
def test_bad_completion_prompts(prompt: Any) -> None:
    body = {"model": "m"} if prompt is None else {"model": "m", "prompt": prompt}
    with pytest.raises(ShapeError) as info:
        validate_completion(body)
    assert info.value.param == "prompt"


def test_embedding_inputs_and_token_estimate() -> None:
    req = validate_embedding({"model": "e", "input": ["abcd", "abcdefgh"], "dimensions": 4})
    assert req.items() == ["abcd", "abcdefgh"]
    assert req.prompt_tokens() == 3
    tokens = validate_embedding({"model": "e", "input": [5, 6, 7]})
    assert tokens.items() == [[5, 6, 7]] and tokens.prompt_tokens() == 3
    assert estimate_tokens("") == 1


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": [""]}, "input"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({}, "input"),
    ],
)
def test_bad_embeddings(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ShapeError) as info:
        validate_embedding({"model": "e", **fields})
    assert info.value.param == param
