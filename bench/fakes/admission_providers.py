"""Admission for the Anthropic, Bedrock, Gemini and Vertex dialects (pure but for clocks).

Same order as the OpenAI dialects (:mod:`bench.fakes.admission`): ``expect-*`` keys,
unknown path (the provider's 404), auth, the provider's own header or path checks, the
body's shape, then the model list. Each refusal is the provider's status and body.

- anthropic: ``x-api-key`` or ``Authorization: Bearer`` (401 ``authentication_error``),
  ``anthropic-version`` (400),
  the body against the ``anthropic`` SDK's types (:mod:`bench.fakes.anthropic_shapes`);
- bedrock: SigV4 for the fake's :class:`~bench.fakes.sigv4.AwsTestCredentials` (403 with
  ``x-amzn-errortype``; a ``Bearer`` equal to ``api_key`` is accepted too), Converse
  bodies against botocore's service model, InvokeModel bodies as Anthropic's;
- gemini: ``x-goog-api-key`` or ``?key=``; vertex: ``Authorization: Bearer`` (401), the
  project and location; ``generateContent`` bodies against
  :mod:`bench.fakes.gemini_shapes`, Anthropic ``rawPredict`` bodies as Anthropic's.
"""

from __future__ import annotations

from typing import Any, Literal

from bench.fakes import answers, anthropic_answers, bedrock_answers, gemini_answers, sigv4
from bench.fakes.anthropic_shapes import ShapeError, validate_count_tokens, validate_messages
from bench.fakes.bedrock_shapes import BedrockShapeError, validate_converse
from bench.fakes.calls import NOT_JSON, Call, FakeConfig, Incoming, Rejected
from bench.fakes.expect import Observed, check
from bench.fakes.gemini_shapes import GeminiShapeError, validate_generate
from bench.fakes.script import Script

__all__ = ["admit_anthropic", "admit_bedrock", "admit_google"]

_DEFAULT_AWS = sigv4.AwsTestCredentials()
_GOOGLE_METHODS = ("generateContent", "streamGenerateContent")
_ANTHROPIC_METHODS = ("rawPredict", "streamRawPredict")
_NO_CALLER = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


def _expect(script: Script, req: Incoming, model: str | None) -> None:
    if not script.has_expectations:
        return
    body = None if req.body is NOT_JSON else req.body
    diffs = check(script, Observed(req.path, req.query, req.headers, body, model))
    if diffs:
        raise Rejected(400, answers.fake_error("fake_expectation_failed", "; ".join(diffs)))


def _body_model(body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def _bearer(req: Incoming) -> str:
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# --- anthropic -------------------------------------------------------------------------


def _anthropic(status: int, type_: str, message: str) -> Rejected:
    return Rejected(status, anthropic_answers.error(type_, message))


def _messages_call(
    config: FakeConfig,
    script: Script,
    kind: Literal["messages", "count_tokens"],
    body: Any,
    platform: Literal["anthropic", "bedrock", "vertex"],
    model: str | None,
) -> Call:
    """Validate an Anthropic body; ``model`` is the path's (Bedrock, Vertex) or None."""
    if body is NOT_JSON:
        raise _anthropic(400, "invalid_request_error", "Request body is not valid JSON.")
    try:
        if kind == "count_tokens":
            tokens = validate_count_tokens(body, "vertex" if platform == "vertex" else "anthropic")
            call = Call("count_tokens", model=str(body["model"]), prompt_tokens=tokens)
        else:
            req = validate_messages(body, platform)
            call = Call(
                "messages",
                model=model or req.model or "",
                stream=req.stream,
                max_tokens=req.max_tokens,
                prompt_tokens=req.prompt_tokens,
                tools=req.tools,
            )
    except ShapeError as exc:
        if platform == "bedrock":
            error, headers = bedrock_answers.error("ValidationException", exc.message)
            raise Rejected(400, error, headers) from None
        raise _anthropic(400, "invalid_request_error", exc.message) from None
    if config.models is not None and call.model not in config.models:
        if platform == "bedrock":
            raise _bedrock(400, "ValidationException", "The provided model identifier is invalid.")
        raise _anthropic(404, "not_found_error", f"model: {call.model}")
    if script.response_model is not None:
        call.model = script.response_model
    return call


def admit_anthropic(config: FakeConfig, script: Script, req: Incoming) -> Call:
    _expect(script, req, _body_model(req.body))
    if req.kind not in ("messages", "count_tokens"):
        raise _anthropic(404, "not_found_error", "Not Found")
    # The anthropic SDK (2.x) sends the API key as a Bearer token; x-api-key is the
    # documented header. Either is accepted.
    key = req.headers.get("x-api-key") or _bearer(req)
    if not key:
        raise _anthropic(401, "authentication_error", "x-api-key header is required")
    if config.api_key is not None and key != config.api_key:
        raise _anthropic(401, "authentication_error", "invalid x-api-key")
    if not req.headers.get("anthropic-version"):
        raise _anthropic(400, "invalid_request_error", "anthropic-version: header is required")
    kind: Literal["messages", "count_tokens"] = (
        "count_tokens" if req.kind == "count_tokens" else "messages"
    )
    return _messages_call(config, script, kind, req.body, "anthropic", None)


# --- bedrock ---------------------------------------------------------------------------


def _bedrock(status: int, type_: str, message: str) -> Rejected:
    body, headers = bedrock_answers.error(type_, message)
    return Rejected(status, body, headers)


def admit_bedrock(config: FakeConfig, script: Script, req: Incoming) -> Call:
    model = req.params.get("model")
    _expect(script, req, model)
    if req.kind not in ("converse", "converse_stream", "invoke", "invoke_stream") or not model:
        raise _bedrock(404, "UnknownOperationException", "Unknown operation")
    bearer = _bearer(req)
    if bearer and config.api_key is not None:
        if bearer != config.api_key:
            raise _bedrock(403, "UnrecognizedClientException", "Invalid API Key format.")
    else:
        try:
            sigv4.verify(
                config.aws or _DEFAULT_AWS, req.method, req.raw_path, req.headers, req.raw_body
            )
        except sigv4.SigV4Error as exc:
            raise _bedrock(403, exc.error_type, exc.message) from None
    stream = req.kind.endswith("_stream")
    if req.kind.startswith("invoke"):
        call = _messages_call(config, script, "messages", req.body, "bedrock", model)
        call.kind, call.stream = "invoke", stream
        return call
    if req.body is NOT_JSON:
        raise _bedrock(400, "ValidationException", "Malformed input request, please reformat "
                       "your input and try again.")  # fmt: skip
    try:
        converse = validate_converse(req.body, model, stream=stream)
    except BedrockShapeError as exc:
        raise _bedrock(400, "ValidationException", exc.message) from None
    if config.models is not None and model not in config.models:
        raise _bedrock(400, "ValidationException", "The provided model identifier is invalid.")
    return Call(
        "converse",
        model=script.response_model or model,
        stream=stream,
        max_tokens=converse.max_tokens,
        prompt_tokens=converse.prompt_tokens,
        tools=converse.tools,
    )


# --- gemini and vertex -----------------------------------------------------------------


def _google(status: int, message: str, violations: list[tuple[str, str]] | None = None) -> Rejected:
    return Rejected(status, gemini_answers.error(status, message, violations=violations or ()))


def admit_google(config: FakeConfig, script: Script, req: Incoming) -> Call:
    model, _, method = req.params.get("target", "").rpartition(":")
    _expect(script, req, model or None)
    publisher = req.params.get("publisher", "google")
    methods = _ANTHROPIC_METHODS if publisher == "anthropic" else _GOOGLE_METHODS
    if req.kind != "google" or not model or method not in methods:
        raise _google(404, "Method not found.")
    if publisher not in ("google", "anthropic"):
        raise _google(404, f"Publisher `{publisher}` was not found.")
    vertex = config.dialect == "vertex"
    if vertex:
        _vertex_auth(config, req, publisher, model)
    else:
        key = req.headers.get("x-goog-api-key") or req.query.get("key")
        if not key:
            raise _google(403, _NO_CALLER)
        if config.api_key is not None and key != config.api_key:
            raise _google(400, "API key not valid. Please pass a valid API key.")
    if publisher == "anthropic":
        if model == "count-tokens":
            return _messages_call(config, script, "count_tokens", req.body, "vertex", None)
        call = _messages_call(config, script, "messages", req.body, "vertex", model)
        call.stream = call.stream or method == "streamRawPredict"
        return call
    if req.body is NOT_JSON:
        raise _google(400, "Invalid JSON payload received. Unexpected token.")
    try:
        request = validate_generate(req.body, "vertex" if vertex else "gemini")
    except GeminiShapeError as exc:
        raise _google(400, exc.message, exc.violations) from None
    if config.models is not None and model not in config.models:
        raise _google(404, _model_not_found(req, model, method, vertex))
    return Call(
        "generate",
        model=script.response_model or model,
        stream=method == "streamGenerateContent",
        max_tokens=request.max_output_tokens(),
        prompt_tokens=request.prompt_tokens(),
        tools=request.declares_functions,
        sse=req.query.get("alt") == "sse",
    )


def _resource(req: Incoming, publisher: str, model: str) -> str:
    project, location = req.params.get("project", ""), req.params.get("location", "")
    return f"projects/{project}/locations/{location}/publishers/{publisher}/models/{model}"


def _vertex_auth(config: FakeConfig, req: Incoming, publisher: str, model: str) -> None:
    token = _bearer(req)
    if not token or (config.api_key is not None and token != config.api_key):
        raise _google(401, gemini_answers.error_message("UNAUTHENTICATED"))
    project, location = req.params.get("project"), req.params.get("location")
    if (config.gcp_project is not None and project != config.gcp_project) or (
        config.gcp_location is not None and location != config.gcp_location
    ):
        resource = _resource(req, publisher, model)
        raise _google(
            403,
            f"Permission 'aiplatform.endpoints.predict' denied on resource "
            f"'//aiplatform.googleapis.com/{resource}' (or it may not exist).",
        )


def _model_not_found(req: Incoming, model: str, method: str, vertex: bool) -> str:
    if vertex:
        return (
            f"Publisher Model `{_resource(req, 'google', model)}` was not found or your "
            "project does not have access to it."
        )
    version = req.path.split("/")[1] if req.path.count("/") > 1 else "v1beta"
    return (
        f"models/{model} is not found for API version {version}, or is not supported for "
        f"{method}. Call ListModels to see the list of available models and their supported "
        "methods."
    )
