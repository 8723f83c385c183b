"""Anthropic Messages answers and errors → OpenAI's `chat.completion` and error shapes,
for the Anthropic and Vertex translators; the results are read back by the openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from common import jsonutil
from common.errors import UpstreamError
from tests.support.anthropic_wire import openai_client
from tier1.http.parse import parse
from tier1.providers.base import ParsedRequest, Translator
from tier1.providers.openai_anthropic import ChatToMessages
from tier1.providers.openai_vertex_anthropic import ChatToVertexMessages

NOW = 1_700_000_000.0
TRANSLATORS: list[Translator] = [
    ChatToMessages("https://api.anthropic.com", 1024, clock=lambda: NOW),
    ChatToVertexMessages("https://v.test", "p", "us-east5", 1024, clock=lambda: NOW),
]
REQ: ParsedRequest = parse(
    "chat", jsonutil.dumps({"model": "asked", "messages": [{"role": "user", "content": "hi"}]}), {}
)

MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-x",
    "content": [
        {"type": "thinking", "thinking": "Need weather.", "signature": "sig=="},
        {"type": "text", "text": "Let me check "},
        {"type": "text", "text": "both."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}},
        {"type": "redacted_thinking", "data": "xxx"},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "cache_read_input_tokens": 50,
        "cache_creation_input_tokens": 20,
        "output_tokens": 40,
        "output_tokens_details": {"thinking_tokens": 12},
    },
}

CHAT = {
    "id": "msg_01",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "claude-sonnet-x",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me check both.",
                "reasoning_content": "Need weather.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": "{}"},
                    },
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 170,
        "completion_tokens": 40,
        "total_tokens": 210,
        "prompt_tokens_details": {"cached_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 12},
    },
}


@pytest.mark.parametrize("translator", TRANSLATORS)
def test_golden_response(translator: Translator) -> None:
    out = translator.response(REQ, 200, jsonutil.dumps(MESSAGE), rename=False)
    assert jsonutil.loads(out.body) == CHAT
    assert out.model == "claude-sonnet-x"
    assert out.usage is not None
    assert (out.usage.input, out.usage.cached_input, out.usage.output, out.usage.reasoning) == (
        170,
        50,
        40,
        12,
    )
    completion = openai_client(200, out.body).chat.completions.create(
        model="asked", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.tool_calls is not None
    assert completion.usage is not None and completion.usage.prompt_tokens == 170


@pytest.mark.parametrize("translator", TRANSLATORS)
def test_renamed_response_shows_the_client_model(translator: Translator) -> None:
    out = translator.response(REQ, 200, jsonutil.dumps(MESSAGE), rename=True)
    assert jsonutil.loads(out.body)["model"] == "asked"
    assert out.model == "claude-sonnet-x"  # metrics still see who answered


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_finish_reasons(stop: str, finish: str) -> None:
    msg: dict[str, Any] = {
        **MESSAGE,
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": stop,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    out = jsonutil.loads(TRANSLATORS[0].response(REQ, 200, jsonutil.dumps(msg), rename=False).body)
    assert out["choices"][0]["finish_reason"] == finish
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "x"}
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_empty_content_is_null() -> None:
    msg = {**MESSAGE, "content": [], "stop_reason": "end_turn"}
    out = jsonutil.loads(TRANSLATORS[0].response(REQ, 200, jsonutil.dumps(msg), rename=False).body)
    assert out["choices"][0]["message"] == {"role": "assistant", "content": None}


@pytest.mark.parametrize("body", [b"<html>", b'{"type": "error"}', b"[]"])
def test_a_body_that_is_no_message_is_an_upstream_error(body: bytes) -> None:
    with pytest.raises(UpstreamError):
        TRANSLATORS[0].response(REQ, 200, body, rename=False)


def _anthropic_error(kind: str, message: str) -> bytes:
    return jsonutil.dumps({"type": "error", "error": {"type": kind, "message": message}})


@pytest.mark.parametrize("translator", TRANSLATORS)
@pytest.mark.parametrize(
    ("status", "kind", "openai_type"),
    [
        (400, "invalid_request_error", "invalid_request_error"),
        (404, "not_found_error", "invalid_request_error"),
        (413, "request_too_large", "invalid_request_error"),
        (429, "rate_limit_error", "rate_limit_error"),
        (500, "api_error", "api_error"),
        (529, "overloaded_error", "api_error"),
    ],
)
def test_errors_keep_status_and_message(
    translator: Translator, status: int, kind: str, openai_type: str
) -> None:
    out_status, body = translator.error(status, _anthropic_error(kind, "details here"))
    assert out_status == status  # 529 stays 529: tier1 retries 5xx
    assert jsonutil.loads(body) == {
        "error": {"message": "details here", "type": openai_type, "param": None, "code": kind}
    }


@pytest.mark.parametrize("translator", TRANSLATORS)
@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_errors_never_reach_the_client(translator: Translator, status: int) -> None:
    upstream = _anthropic_error("authentication_error", "invalid x-api-key sk-ant-api03-SECRET")
    out_status, body = translator.error(status, upstream)
    assert out_status == 502
    assert b"SECRET" not in body and b"x-api-key" not in body
    assert jsonutil.loads(body)["error"]["code"] == "upstream_auth_failed"


def test_unknown_error_bodies_get_a_generic_message() -> None:
    status, body = TRANSLATORS[0].error(502, b"<html>bad gateway</html>")
    assert status == 502 and jsonutil.loads(body)["error"]["code"] == "upstream_error"
    # Vertex wraps Google errors in a list
    google = (
        b'[{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}]'
    )
    status, body = TRANSLATORS[1].error(429, google)
    assert status == 429
    assert jsonutil.loads(body)["error"] == {
        "message": "Quota exceeded",
        "type": "api_error",
        "param": None,
        "code": "RESOURCE_EXHAUSTED",
    }


def test_errors_read_by_the_openai_sdk() -> None:
    status, body = TRANSLATORS[0].error(429, _anthropic_error("rate_limit_error", "slow down"))
    client = openai_client(status, body)
    with pytest.raises(openai.RateLimitError, match="slow down"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
