"""Bedrock Converse answers and errors → OpenAI chat completions and error bodies."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.validate import ParamValidator

from common import jsonutil
from common.errors import UpstreamError
from tests.support.bedrock import (
    COMPLETION_ID,
    CREATED,
    MODEL,
    assert_valid_response,
    operation,
    parsed,
    translator,
)
from tier1.providers.base import Usage
from tier1.providers.openai_bedrock import error_with_type

REQ = parsed({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})


def _answer(content: list[Any], stop: str = "end_turn", **usage: int) -> bytes:
    body = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15, **usage},
        "metrics": {"latencyMs": 321},
    }
    assert_valid_response(body)
    return jsonutil.dumps(body)


def test_fixture_validation_is_not_a_no_op() -> None:
    report = ParamValidator().validate(
        {"output": {"message": {"role": "bot", "content": []}}}, operation("Converse").output_shape
    )
    assert report.has_errors()


def test_text_answer_golden() -> None:
    out = translator().response(
        REQ, 200, _answer([{"text": "Hello"}, {"text": " world"}]), rename=False
    )
    assert jsonutil.loads(out.body) == {
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello world"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    assert out.usage == Usage(input=10, output=5)
    assert out.model == MODEL


def test_tool_use_answer() -> None:
    body = _answer(
        [
            {"text": "Let me check."},
            {
                "toolUse": {
                    "toolUseId": "tooluse_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            },
            {"toolUse": {"toolUseId": "tooluse_2", "name": "now", "input": {}}},
        ],
        stop="tool_use",
    )
    choice = jsonutil.loads(translator().response(REQ, 200, body, rename=False).body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "tooluse_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {"id": "tooluse_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
        ],
    }


def test_tool_use_only_has_null_content() -> None:
    body = _answer([{"toolUse": {"toolUseId": "t", "name": "now", "input": {}}}], "tool_use")
    message = jsonutil.loads(translator().response(REQ, 200, body, rename=False).body)
    assert message["choices"][0]["message"]["content"] is None


def test_reasoning_answer() -> None:
    body = _answer(
        [
            {"reasoningContent": {"reasoningText": {"text": "6 times 7", "signature": "sig"}}},
            {"reasoningContent": {"redactedContent": "c2VjcmV0"}},
            {"text": "42"},
        ]
    )
    message = jsonutil.loads(translator().response(REQ, 200, body, rename=False).body)
    assert message["choices"][0]["message"] == {
        "role": "assistant",
        "content": "42",
        "reasoning_content": "6 times 7",
    }


def test_usage_with_prompt_cache() -> None:
    body = _answer(
        [{"text": "ok"}], cacheReadInputTokens=100, cacheWriteInputTokens=20, totalTokens=135
    )
    out = translator().response(REQ, 200, body, rename=True)
    assert jsonutil.loads(out.body)["usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 5,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    assert out.usage == Usage(input=130, cached_input=100, output=5)


def test_renamed_model_reports_the_requested_one() -> None:
    out = translator().response(REQ, 200, _answer([{"text": "ok"}]), rename=True)
    assert jsonutil.loads(out.body)["model"] == MODEL and out.model == MODEL


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "stop"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    body = _answer([{"text": "x"}], stop=stop)
    choice = jsonutil.loads(translator().response(REQ, 200, body, rename=False).body)["choices"][0]
    assert choice["finish_reason"] == finish


@pytest.mark.parametrize("body", [b"<html>", b"{}", b'{"output": {}}', b"[]"])
def test_an_answer_without_a_message_is_an_upstream_error(body: bytes) -> None:
    with pytest.raises(UpstreamError, match="without a message"):
        translator().response(REQ, 200, body, rename=False)


AWS_NS = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


@pytest.mark.parametrize(
    ("status", "header", "body", "expected"),
    [
        (
            400,
            "ValidationException" + AWS_NS,
            {"message": "Malformed input request"},
            (400, "invalid_request_error", "ValidationException", "Malformed input request"),
        ),
        (
            404,
            "ResourceNotFoundException",
            {"message": "Model not found"},
            (404, "invalid_request_error", "ResourceNotFoundException", "Model not found"),
        ),
        (
            429,
            "ThrottlingException",
            {"message": "Too many requests, please wait before trying again."},
            (429, "rate_limit_error", "ThrottlingException", "Too many requests"),
        ),
        (
            429,
            "ModelNotReadyException",
            {"message": "Model is not ready"},
            (429, "rate_limit_error", "ModelNotReadyException", "not ready"),
        ),
        (
            408,
            "ModelTimeoutException",
            {"message": "Model has timed out"},
            (408, "api_error", "ModelTimeoutException", "timed out"),
        ),
        (
            424,
            "ModelErrorException",
            {"message": "The model failed"},
            (424, "api_error", "ModelErrorException", "failed"),
        ),
        (
            500,
            "InternalServerException",
            {"message": "Internal error"},
            (500, "api_error", "InternalServerException", "Internal error"),
        ),
        (
            503,
            "ServiceUnavailableException",
            {"message": "Bedrock is unable to process your request."},
            (503, "api_error", "ServiceUnavailableException", "unable to process"),
        ),
        (
            400,
            None,
            {"__type": "com.amazon.coral.validate#ValidationException", "message": "bad"},
            (400, "invalid_request_error", "ValidationException", "bad"),
        ),
        (
            429,
            None,
            {"message": "slow down"},
            (429, "rate_limit_error", "upstream_error", "slow down"),
        ),
        (500, None, b"<html>oops</html>", (500, "api_error", "upstream_error", "HTTP 500")),
        (503, None, b"", (503, "api_error", "upstream_error", "HTTP 503")),
        (
            404,
            "SomethingNewException",
            {},
            (404, "invalid_request_error", "SomethingNewException", "HTTP 404"),
        ),
    ],
)
def test_error_mapping(
    status: int, header: str | None, body: Any, expected: tuple[int, str, str, str]
) -> None:
    raw = body if isinstance(body, bytes) else jsonutil.dumps(body)
    out_status, out_body = error_with_type(status, raw, header)
    error = jsonutil.loads(out_body)["error"]
    assert (out_status, error["type"], error["code"]) == expected[:3]
    assert expected[3] in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


SECRET = "User: arn:aws:sts::123456789012:assumed-role/gw/i-0abc is not authorized"


@pytest.mark.parametrize(
    ("status", "header"),
    [
        (403, "AccessDeniedException" + AWS_NS),
        (403, None),
        (401, None),
        (400, "ExpiredTokenException"),
        (403, "UnrecognizedClientException"),
        (403, "InvalidSignatureException"),
    ],
)
def test_credential_errors_never_reach_the_client(status: int, header: str | None) -> None:
    out_status, out_body = error_with_type(status, jsonutil.dumps({"message": SECRET}), header)
    assert out_status == 502 and b"arn:aws" not in out_body and b"123456789012" not in out_body
    assert jsonutil.loads(out_body)["error"]["code"] == "upstream_auth_failed"


def test_protocol_error_has_no_headers_and_falls_back_to_the_status() -> None:
    raw = jsonutil.dumps({"message": "Too many tokens"})
    assert translator().error(429, raw) == error_with_type(429, raw, None)
