"""admit() for the Anthropic, Bedrock, Gemini and Vertex dialects: order and refusals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from bench.fakes.admission import NOT_JSON, Call, FakeConfig, Incoming, Kind, Rejected, admit
from bench.fakes.script import Script

HI = [{"role": "user", "content": "hi"}]
ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
GOOGLE_BODY = {"contents": [{"parts": [{"text": "hi"}]}]}
VERTEX = FakeConfig("vx", "vertex", api_key="tok", gcp_project="p", gcp_location="l")


def incoming(kind: Kind, path: str, headers: dict[str, str], body: Any, **params: str) -> Incoming:
    query = dict(part.split("=", 1) for part in path.partition("?")[2].split("&") if part)
    return Incoming(kind, "POST", path.partition("?")[0], query, CIMultiDict(headers), params, body)


def refused(config: FakeConfig, req: Incoming, script: Script | None = None) -> tuple[int, Any, dict[str, str]]:  # fmt: skip
    with pytest.raises(Rejected) as info:
        admit(config, script or Script(), req)
    return info.value.status, orjson.loads(info.value.body), dict(info.value.headers)


def messages(body: Any, headers: dict[str, str] = ANTHROPIC_HEADERS) -> Incoming:
    return incoming("messages", "/v1/messages", headers, body)


def test_anthropic_call_and_model_list() -> None:
    config = FakeConfig("an", "anthropic", models=("claude-a",))
    body = {"model": "claude-a", "max_tokens": 3, "messages": HI, "stream": True, "tools": []}
    call = admit(config, Script(response_model="shown"), messages(body))
    assert (call.kind, call.model, call.stream, call.max_tokens, call.tools) == (
        "messages",
        "shown",
        True,
        3,
        False,
    )
    status, error, _ = refused(config, messages({**body, "model": "claude-b"}))
    assert (status, error["error"]) == (
        404,
        {"type": "not_found_error", "message": "model: claude-b"},
    )


def test_anthropic_order_expectations_then_path_then_auth() -> None:
    config = FakeConfig("an", "anthropic", api_key="k")
    unknown = incoming("unknown", "/v1/complete", {}, NOT_JSON)
    assert refused(config, unknown)[0] == 404
    status, error, _ = refused(config, unknown, Script(expect_model="m"))
    assert status == 400 and error["error"]["type"] == "fake_expectation_failed"
    assert refused(config, messages({}, {"anthropic-version": "x"}))[0] == 401
    status, error, _ = refused(config, messages(NOT_JSON))
    assert (status, error["error"]["type"]) == (400, "invalid_request_error")


def test_bedrock_checks_the_signature_before_the_body() -> None:
    config = FakeConfig("br", "bedrock")
    req = incoming("converse", "/model/m/converse", {}, {"bogus": 1}, model="m")
    status, error, headers = refused(config, req)
    assert (status, headers) == (403, {"x-amzn-errortype": "MissingAuthenticationTokenException"})
    assert error == {"message": "Missing Authentication Token"}
    status, _, headers = refused(config, incoming("unknown", "/model/m/chat", {}, NOT_JSON))
    assert (status, headers["x-amzn-errortype"]) == (404, "UnknownOperationException")


def test_bedrock_with_a_bearer_key_and_a_model_list() -> None:
    config = FakeConfig("br", "bedrock", api_key="bk", models=("m",))
    auth = {"Authorization": "Bearer bk"}
    call = admit(config, Script(), incoming("converse_stream", "/model/m/converse-stream", auth, {"messages": []}, model="m"))  # fmt: skip
    assert (call.kind, call.model, call.stream) == ("converse", "m", True)
    other = incoming("converse", "/model/x/converse", auth, {}, model="x")
    status, error, headers = refused(config, other)
    assert (status, headers["x-amzn-errortype"]) == (400, "ValidationException")
    assert error["message"] == "The provided model identifier is invalid."
    invoke = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4, "messages": HI}
    call = admit(config, Script(), incoming("invoke_stream", "/model/m/invoke-with-response-stream", auth, invoke, model="m"))  # fmt: skip
    assert (call.kind, call.model, call.stream, call.max_tokens) == ("invoke", "m", True, 4)
    expect = Script(expect_model="other")
    status, error, _ = refused(
        config, incoming("converse", "/model/m/converse", auth, {}, model="m"), expect
    )
    assert status == 400 and "model: expected 'other', got 'm'" in error["error"]["message"]


def google(path: str, headers: dict[str, str], body: Any = GOOGLE_BODY, **params: str) -> Incoming:
    return incoming("google", path, headers, body, **params)


def test_gemini_key_in_header_or_query_and_model_list() -> None:
    config = FakeConfig("gm", "gemini", api_key="g", models=("gemini-a",))
    call = admit(config, Script(), google("/v1beta/models/gemini-a:streamGenerateContent?alt=sse&key=g", {}, target="gemini-a:streamGenerateContent"))  # fmt: skip
    assert (call.kind, call.model, call.stream, call.sse) == ("generate", "gemini-a", True, True)
    status, error, _ = refused(config, google("/v1beta/models/gemini-b:generateContent", {"x-goog-api-key": "g"}, target="gemini-b:generateContent"))  # fmt: skip
    assert status == 404 and error["error"]["message"].startswith(
        "models/gemini-b is not found for API version v1beta, or is not supported for generateContent."
    )
    status, _, _ = refused(config, google("/v1beta/models/gemini-a:countTokens", {"x-goog-api-key": "g"}, target="gemini-a:countTokens"))  # fmt: skip
    assert status == 404


def test_vertex_anthropic_publisher_and_count_tokens() -> None:
    auth = {"Authorization": "Bearer tok"}
    params = {"project": "p", "location": "l", "publisher": "anthropic"}
    body = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 4, "messages": HI}
    call = admit(
        VERTEX, Script(), google("/v1/x", auth, body, target="claude-a:streamRawPredict", **params)
    )
    assert (call.kind, call.model, call.stream) == ("messages", "claude-a", True)
    count: Call = admit(VERTEX, Script(), google("/v1/x", auth, {"model": "claude-a", "messages": HI}, target="count-tokens:rawPredict", **params))  # fmt: skip
    assert (count.kind, count.prompt_tokens) == ("count_tokens", 1)
    status, error, _ = refused(VERTEX, google("/v1/x", auth, {**body, "model": "m"}, target="claude-a:rawPredict", **params))  # fmt: skip
    assert (status, error["error"]["message"]) == (400, "model: Extra inputs are not permitted")
    status, error, _ = refused(VERTEX, google("/v1/x", auth, body, target="claude-a:rawPredict", project="q", location="l", publisher="anthropic"))  # fmt: skip
    assert (
        status == 403
        and "projects/q/locations/l/publishers/anthropic/models/claude-a"
        in error["error"]["message"]
    )
