"""admit(): the provider's refusals, in order, as (status, error body)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from bench.fakes.admission import NOT_JSON, FakeConfig, Incoming, Kind, Rejected, admit
from bench.fakes.script import Script

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
OPENAI = FakeConfig("a", "openai", api_key="sk-right")
AZURE = FakeConfig("az", "azure", api_key="azk", deployments={"prod": "gpt-4o-2024-08-06"})
AZ_PATH = "/openai/deployments/prod/chat/completions"


def incoming(
    headers: dict[str, str],
    body: Any = CHAT,
    *,
    kind: Kind = "chat",
    path: str = "/v1/chat/completions",
    query: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Incoming:
    return Incoming(kind, "POST", path, query or {}, CIMultiDict(headers), params or {}, body)


def azure(headers: dict[str, str], body: Any = CHAT, **kw: Any) -> Incoming:
    kw.setdefault("query", {"api-version": "2024-10-21"})
    kw.setdefault("params", {"deployment": "prod"})
    return incoming(headers, body, path=AZ_PATH, **kw)


def rejected(config: FakeConfig, req: Incoming, script: Script | None = None) -> tuple[int, Any]:
    with pytest.raises(Rejected) as info:
        admit(config, script or Script(), req)
    return info.value.status, orjson.loads(info.value.body)["error"]


def test_openai_accepts_the_right_key() -> None:
    call = admit(OPENAI, Script(), incoming({"Authorization": "Bearer sk-right"}))
    assert (call.kind, call.model, call.stream, call.prompt_tokens) == ("chat", "gpt-4o", False, 1)


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, None), ({"Authorization": "Basic x"}, None), ({"Authorization": "Bearer sk-wrong1"}, "invalid_api_key")],
)  # fmt: skip
def test_openai_auth(headers: dict[str, str], code: str | None) -> None:
    status, error = rejected(OPENAI, incoming(headers))
    assert (status, error["type"], error["code"]) == (401, "invalid_request_error", code)
    assert "sk-wrong1" not in error["message"]


@pytest.mark.parametrize(
    "headers",
    [{"api-key": "azk"}, {"Authorization": "Bearer azk"}, {"api-key": "azk", "Authorization": "Bearer x"}],
)  # fmt: skip
def test_azure_auth_accepts_key_or_token(headers: dict[str, str]) -> None:
    assert admit(AZURE, Script(), azure(headers)).model == "gpt-4o-2024-08-06"


@pytest.mark.parametrize(
    "headers", [{}, {"api-key": "nope"}, {"api-key": ""}, {"Authorization": "Bearer t"}]
)
def test_azure_auth_refusals(headers: dict[str, str]) -> None:
    status, error = rejected(AZURE, azure(headers))
    assert status == 401 and error["code"] == "401" and set(error) == {"code", "message"}


def test_azure_query_and_deployment() -> None:
    ok = {"api-key": "azk"}
    assert rejected(AZURE, azure(ok, query={}))[1]["code"] == "MissingApiVersionParameter"
    status, error = rejected(AZURE, azure(ok, params={"deployment": "other"}))
    assert (status, error["code"]) == (404, "DeploymentNotFound")
    any_deployment = FakeConfig("az", "azure")
    call = admit(any_deployment, Script(), azure({"api-key": "k"}, {"messages": CHAT["messages"]}))
    assert call.model == "prod"


def test_checks_run_in_order() -> None:
    # expectations first, even before auth; then auth before the body.
    script = Script(expect_model="gpt-5")
    assert rejected(OPENAI, incoming({}, NOT_JSON), script)[1]["type"] == "fake_expectation_failed"
    assert rejected(OPENAI, incoming({}, NOT_JSON))[0] == 401
    status, error = rejected(OPENAI, incoming({"Authorization": "Bearer sk-right"}, NOT_JSON))
    assert status == 400 and "could not parse the JSON body" in error["message"]


def test_unknown_paths() -> None:
    req = incoming({}, kind="unknown", path="/v2/x")
    assert rejected(OPENAI, req)[1]["message"] == "Invalid URL (POST /v2/x)"
    assert rejected(AZURE, req)[1] == {"code": "404", "message": "Resource not found"}


def test_models_and_response_model() -> None:
    listed = FakeConfig("m", models=("gpt-4o",))
    auth = {"Authorization": "Bearer k"}
    assert (
        rejected(listed, incoming(auth, {**CHAT, "model": "gpt-5"}))[1]["code"] == "model_not_found"
    )
    one = incoming(auth, NOT_JSON, kind="model", params={"model": "gpt-5"})
    assert rejected(listed, one)[0] == 404
    assert admit(listed, Script(response_model="x"), incoming(auth)).model == "x"


def test_completions_and_embeddings_calls() -> None:
    auth = {"Authorization": "Bearer sk-right"}
    text = admit(OPENAI, Script(), incoming(auth, {"model": "m", "prompt": ["a", "b"], "n": 2, "stream": True, "stream_options": {"include_usage": True}}, kind="completions"))  # fmt: skip
    assert (text.choices, text.stream, text.include_usage) == (4, True, True)
    emb = admit(
        OPENAI, Script(), incoming(auth, {"model": "e", "input": ["abcdefgh"]}, kind="embeddings")
    )
    assert emb.embedding is not None and emb.prompt_tokens == 2
