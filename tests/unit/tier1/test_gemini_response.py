"""Gemini generateContent answers and errors → OpenAI chat.completion and error bodies.
The hand-written upstream answers are validated against Google's own types first."""

from __future__ import annotations

from typing import Any

import pytest

from common import jsonutil
from common.errors import UpstreamError
from tests.support.gemini_wire import assert_gemini_response
from tier1.http.parse import parse
from tier1.providers.base import ParsedRequest, Usage
from tier1.providers.openai_gemini import ChatToGemini, ChatToVertex

GEMINI = ChatToGemini(clock=lambda: 1_700_000_000.5)
VERTEX = ChatToVertex(
    "https://europe-west4-aiplatform.googleapis.com",
    "p",
    "europe-west4",
    clock=lambda: 1_700_000_000.5,
)
REQ: ParsedRequest = parse(
    "chat",
    jsonutil.dumps({"model": "client-model", "messages": [{"role": "user", "content": "x"}]}),
    {},
)


def _answer(upstream: dict[str, Any], *, rename: bool = False) -> tuple[dict[str, Any], Any]:
    assert_gemini_response(upstream)
    out = GEMINI.response(REQ, 200, jsonutil.dumps(upstream), rename=rename)
    body: dict[str, Any] = jsonutil.loads(out.body)
    vertex = VERTEX.response(REQ, 200, jsonutil.dumps(upstream), rename=rename)
    same = jsonutil.loads(vertex.body)
    if "responseId" not in upstream:  # then the id is random
        assert same.pop("id") != body["id"]
        same["id"] = body["id"]
    assert (same, vertex.usage, vertex.model) == (body, out.usage, out.model)
    return body, out


def test_text_answer_golden() -> None:
    body, out = _answer(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Hello"}, {"text": " there"}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 4,
                "candidatesTokenCount": 2,
                "totalTokenCount": 6,
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "resp-1",
        }
    )
    assert body == {
        "id": "chatcmpl-resp-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gemini-2.5-flash",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 4,
            "completion_tokens": 2,
            "total_tokens": 6,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    assert out.usage == Usage(input=4, output=2) and out.model == "gemini-2.5-flash"


def test_renamed_model_and_missing_model_version() -> None:
    answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}}]}
    body, out = _answer({**answer, "modelVersion": "gemini-2.5-flash-002"}, rename=True)
    assert body["model"] == "client-model" and out.model == "gemini-2.5-flash-002"
    body, out = _answer(answer)
    assert body["model"] == "client-model" and out.model is None
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["id"].startswith("chatcmpl-")


def test_function_calls_thoughts_and_usage_details() -> None:
    body, out = _answer(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Need the weather.", "thought": True},
                            {
                                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                "thoughtSignature": "c2lnLTE=",
                            },
                            {"functionCall": {"name": "now", "args": {}}},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 100,
                "cachedContentTokenCount": 60,
                "candidatesTokenCount": 20,
                "thoughtsTokenCount": 30,
                "totalTokenCount": 150,
            },
            "modelVersion": "gemini-2.5-pro",
        }
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Need the weather.",
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                "extra_content": {"google": {"thought_signature": "c2lnLTE="}},
            },
            {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": "{}"}},
        ],
    }
    assert body["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    assert out.usage == Usage(input=100, cached_input=60, output=50, reasoning=30)


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    body, _ = _answer({"candidates": [{"finishReason": reason, "index": 0}]})
    assert body["choices"][0]["finish_reason"] == finish
    assert body["choices"][0]["message"]["content"] == ""


def test_blocked_prompt_is_an_empty_filtered_answer() -> None:
    body, out = _answer(
        {
            "promptFeedback": {
                "blockReason": "SAFETY",
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
                ],
            },
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
            "modelVersion": "gemini-2.5-flash",
        }
    )
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ""},
            "finish_reason": "content_filter",
            "logprobs": None,
        }
    ]
    assert out.usage == Usage(input=8)


def test_several_candidates_become_several_choices() -> None:
    body, _ = _answer(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "a"}]}, "finishReason": "STOP"},
                {
                    "content": {"role": "model", "parts": [{"text": "b"}]},
                    "finishReason": "MAX_TOKENS",
                    "index": 1,
                },
            ]
        }
    )
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in body["choices"]] == [
        (0, "a", "stop"),
        (1, "b", "length"),
    ]


def test_a_body_that_is_not_json_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        GEMINI.response(REQ, 200, b"<html>", rename=False)


def _err(code: int, status: str, message: str, **extra: Any) -> bytes:
    return jsonutil.dumps({"error": {"code": code, "message": message, "status": status, **extra}})


BAD_KEY = _err(
    400,
    "INVALID_ARGUMENT",
    "API key not valid. Please pass a valid API key. key=AIzaSy-secret",
    details=[
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        }
    ],
)


@pytest.mark.parametrize(
    ("status", "body", "want_status", "want_type", "want_code", "message"),
    [
        (
            400,
            _err(400, "INVALID_ARGUMENT", "bad schema"),
            400,
            "invalid_request_error",
            "invalid_argument",
            "bad schema",
        ),
        (
            400,
            _err(400, "FAILED_PRECONDITION", "region"),
            400,
            "invalid_request_error",
            "failed_precondition",
            "region",
        ),
        (
            404,
            _err(404, "NOT_FOUND", "no such model"),
            404,
            "invalid_request_error",
            "not_found",
            "no such model",
        ),
        (
            429,
            _err(429, "RESOURCE_EXHAUSTED", "quota"),
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
            "quota",
        ),
        (500, _err(500, "INTERNAL", "oops"), 500, "api_error", "internal", "oops"),
        (
            503,
            _err(503, "UNAVAILABLE", "overloaded"),
            503,
            "api_error",
            "unavailable",
            "overloaded",
        ),
        # Vertex wraps errors in an array
        (
            429,
            b"[" + _err(429, "RESOURCE_EXHAUSTED", "quota") + b"]",
            429,
            "rate_limit_error",
            "rate_limit_exceeded",
            "quota",
        ),
        (
            502,
            b"<html>bad gateway</html>",
            502,
            "api_error",
            "upstream_error",
            "upstream answered HTTP 502",
        ),
        # credential failures: a generic 502, never the upstream's text
        (
            401,
            _err(401, "UNAUTHENTICATED", "token ya29.secret expired"),
            502,
            "api_error",
            "upstream_auth_failed",
            None,
        ),
        (
            403,
            _err(403, "PERMISSION_DENIED", "project 123 denied"),
            502,
            "api_error",
            "upstream_auth_failed",
            None,
        ),
        (400, BAD_KEY, 502, "api_error", "upstream_auth_failed", None),
    ],
)
def test_error_mapping(
    status: int,
    body: bytes,
    want_status: int,
    want_type: str,
    want_code: str,
    message: str | None,
) -> None:
    for translator in (GEMINI, VERTEX):
        got_status, got = translator.error(status, body)
        err = jsonutil.loads(got)["error"]
        assert got_status == want_status
        assert (err["type"], err["code"], err["param"]) == (want_type, want_code, None)
        if message is None:
            assert b"secret" not in got and b"123" not in got
            assert err["message"] == "the upstream rejected the gateway's credentials"
        else:
            assert err["message"] == message
