"""Would the provider, and the test's ``expect-*`` keys, accept this request? (pure)

:func:`admit` takes what arrived (:class:`Incoming`) and either returns the
:class:`Call` to answer or raises :class:`Rejected` with the status and body the
provider would send, checked in this order:

1. ``expect-*`` keys: 400 ``fake_expectation_failed`` naming each differing field;
2. unknown path: 404 (OpenAI ``Invalid URL (...)``; Azure ``Resource not found``);
3. auth: OpenAI ``Authorization: Bearer``; Azure ``api-key`` or a Bearer (Entra) token;
4. Azure: the ``api-version`` query (400) and a known deployment (404);
5. the body: JSON, then the shape in :mod:`bench.fakes.openai_shapes` (400), then the
   model when the fake has a model list (404 ``model_not_found``).

The Anthropic, Bedrock, Gemini and Vertex dialects are admitted in the same order by
:mod:`bench.fakes.admission_providers`. The shared types live in :mod:`bench.fakes.calls`
and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.fakes import answers
from bench.fakes.admission_providers import admit_anthropic, admit_bedrock, admit_google
from bench.fakes.calls import (
    NOT_JSON,
    Call,
    Dialect,
    FakeConfig,
    Incoming,
    Kind,
    Rejected,
)
from bench.fakes.expect import Observed, check
from bench.fakes.openai_shapes import (
    ShapeError,
    validate_chat,
    validate_completion,
    validate_embedding,
)
from bench.fakes.script import Script

__all__ = ["NOT_JSON", "Call", "Dialect", "FakeConfig", "Incoming", "Kind", "Rejected", "admit"]

_INVALID = "invalid_request_error"
_OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_OPENAI_BAD_JSON = (
    "We could not parse the JSON body of your request. The OpenAI API expects a JSON "
    "payload, but what was sent was not valid JSON."
)
_AZURE_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)
_AZURE_BAD_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
_AZURE_NO_VERSION = "The api-version query parameter (?api-version=) is required for all requests."
_AZURE_NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment "
    "within the last 5 minutes, please wait a moment and try again."
)


def admit(config: FakeConfig, script: Script, req: Incoming) -> Call:
    if config.dialect == "anthropic":
        return admit_anthropic(config, script, req)
    if config.dialect == "bedrock":
        return admit_bedrock(config, script, req)
    if config.dialect in ("gemini", "vertex"):
        return admit_google(config, script, req)
    deployment = req.params.get("deployment")
    if script.has_expectations:
        body = None if req.body is NOT_JSON else req.body
        asked = deployment if deployment is not None else _model_of(body)
        diffs = check(script, Observed(req.path, req.query, req.headers, body, asked))
        if diffs:
            raise Rejected(400, answers.fake_error("fake_expectation_failed", "; ".join(diffs)))
    if req.kind == "unknown":
        if config.dialect == "azure":
            raise Rejected(404, answers.azure_error("404", "Resource not found"))
        raise _openai(404, f"Invalid URL ({req.method} {req.path})")
    _check_auth(config, req.headers)
    if config.dialect == "azure":
        if not req.query.get("api-version"):
            raise Rejected(
                400, answers.azure_error("MissingApiVersionParameter", _AZURE_NO_VERSION)
            )
        if deployment is not None and config.deployments is not None:
            if deployment not in config.deployments:
                error = answers.azure_error("DeploymentNotFound", _AZURE_NO_DEPLOYMENT)
                raise Rejected(404, error)
    if req.kind == "models":
        return Call(req.kind, model="")
    if req.kind == "model":
        model = req.params.get("model", "")
        if config.models is not None and model not in config.models:
            raise _openai(404, f"The model '{model}' does not exist", "model", "model_not_found")
        return Call(req.kind, model=model)
    if req.body is NOT_JSON:
        raise _openai(400, _OPENAI_BAD_JSON)
    try:
        call = _parse(config, req.kind, req.body)
    except ShapeError as exc:
        raise _openai(400, exc.message, exc.param, exc.code) from None
    if deployment is not None:
        call.model = (config.deployments or {}).get(deployment, deployment)
    elif config.models is not None and call.model not in config.models:
        message = f"The model `{call.model}` does not exist or you do not have access to it."
        raise _openai(404, message, "model", "model_not_found")
    if script.response_model is not None:
        call.model = script.response_model
    return call


def _openai(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> Rejected:
    return Rejected(status, answers.openai_error(message, _INVALID, param, code))


def _model_of(body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _parse(config: FakeConfig, kind: Kind, body: Any) -> Call:
    required = config.dialect == "openai"
    if kind == "chat":
        chat = validate_chat(body, model_required=required)
        return Call(
            kind,
            model=chat.model or "",
            stream=bool(chat.stream),
            include_usage=chat.include_usage,
            choices=chat.n or 1,
            max_tokens=chat.max_completion_tokens or chat.max_tokens,
            prompt_tokens=chat.prompt_tokens(),
            tools=bool(chat.tools),
        )
    if kind == "completions":
        text = validate_completion(body, model_required=required)
        return Call(
            kind,
            model=text.model or "",
            stream=bool(text.stream),
            include_usage=text.include_usage,
            choices=(text.n or 1) * len(text.prompts()),
            max_tokens=text.max_tokens,
            prompt_tokens=text.prompt_tokens(),
        )
    emb = validate_embedding(body, model_required=required)
    return Call(kind, model=emb.model or "", prompt_tokens=emb.prompt_tokens(), embedding=emb)


def _check_auth(config: FakeConfig, headers: Mapping[str, str]) -> None:
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" else ""
    if config.dialect == "openai":
        if not bearer:
            raise _openai(401, _OPENAI_NO_KEY)
        if config.api_key is not None and bearer != config.api_key:
            message = f"Incorrect API key provided: {_mask(bearer)}."
            raise _openai(401, message, code="invalid_api_key")
        return
    key = headers.get("api-key")
    if key is not None:
        if not key or (config.api_key is not None and key != config.api_key):
            raise Rejected(401, answers.azure_error("401", _AZURE_BAD_KEY))
        return
    if not bearer or (config.api_key is not None and bearer != config.api_key):
        message = _AZURE_BAD_TOKEN if bearer else _AZURE_BAD_KEY
        raise Rejected(401, answers.azure_error("401", message))


def _mask(key: str) -> str:
    """Show a key as OpenAI does: its first and last characters only."""
    if len(key) <= 5:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 5) + key[-2:]
