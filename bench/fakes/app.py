"""A header-scripted fake upstream (OpenAI, Azure, Anthropic, Bedrock, Gemini, Vertex).

Endpoints by dialect:

- ``openai``: ``POST /v1/chat/completions``, ``POST /v1/completions``,
  ``POST /v1/embeddings``, ``GET /v1/models``, ``GET /v1/models/{model}``;
- ``azure``: ``POST /openai/deployments/{deployment}/{chat/completions,completions,
  embeddings}`` and ``GET /openai/models``, all with a required ``api-version`` query;
- ``anthropic``: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``;
- ``bedrock``: ``POST /model/{modelId}/{converse,converse-stream,invoke,
  invoke-with-response-stream}`` (the invoke pair takes Anthropic Messages bodies);
- ``gemini``: ``POST /{v1beta,v1}/models/{model}:{generateContent,streamGenerateContent}``;
- ``vertex``: ``POST /{v1,v1beta1}/projects/{project}/locations/{location}/publishers/
  google/models/{model}:{generateContent,streamGenerateContent}`` and ``.../publishers/
  anthropic/models/{model}:{rawPredict,streamRawPredict}`` (``count-tokens:rawPredict``).

All: ``GET /_fake/requests``, ``POST /_fake/reset``, ``POST /_fake/script``; any other
path is the provider's 404.

One request: record it, read its script (:mod:`bench.fakes.script`), let
:func:`~bench.fakes.admission.admit` refuse it as the provider (or the test's
expectations) would, then hang, delay, and answer what the script says: a scripted
body, a scripted error status, or a generated answer, streamed when ``stream`` is true.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from bench.fakes import answers, anthropic_shapes, replies
from bench.fakes.admission import admit
from bench.fakes.bedrock_shapes import service_model
from bench.fakes.calls import (
    DIALECTS,
    NOT_JSON,
    Call,
    Dialect,
    FakeConfig,
    Incoming,
    Kind,
    Rejected,
)
from bench.fakes.recording import RecordedRequest, Recorder
from bench.fakes.script import Script, ScriptError, check_instance_name, encode_value, script_pairs
from bench.fakes.sigv4 import AwsTestCredentials

__all__ = ["DEFAULT_MODELS", "EMBEDDING_DIMS", "FAKE_STATE", "FakeState", "build_fake_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EMBEDDING_DIMS = 8
DEFAULT_MODELS = ("fake-model",)
_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"
_POLL_S = 0.02


@dataclass(slots=True)
class FakeState:
    """One fake's configuration, current default script, records and counters."""

    config: FakeConfig
    base_defaults: Script
    """The script given at build time; ``POST /_fake/reset`` restores it."""
    defaults: Script
    """The script a request without scripting headers gets."""
    recorder: Recorder
    models_body: bytes
    in_flight: int = 0
    """Requests being answered now (a hung or stalled one counts until its client leaves)."""
    disconnects: int = 0
    """Answers cut short because the client went away (or the server shut down)."""
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @property
    def name(self) -> str:
        return self.config.name

    def next_id(self) -> int:
        return next(self._ids)

    def script_for(self, headers: Mapping[str, str]) -> Script:
        return self.defaults.merged(script_pairs(self.config.name, headers.items()))


FAKE_STATE: web.AppKey[FakeState] = web.AppKey("fake_upstream", FakeState)

_VERTEX_MODEL = (
    "/{version:v1|v1beta1}/projects/{project}/locations/{location}"
    "/publishers/{publisher}/models/{target}"
)
_PROVIDER_ROUTES: dict[Dialect, tuple[tuple[str, Kind], ...]] = {
    "anthropic": (("/v1/messages", "messages"), ("/v1/messages/count_tokens", "count_tokens")),
    "bedrock": (
        ("/model/{model}/converse", "converse"),
        ("/model/{model}/converse-stream", "converse_stream"),
        ("/model/{model}/invoke", "invoke"),
        ("/model/{model}/invoke-with-response-stream", "invoke_stream"),
    ),
    "gemini": (("/{version:v1beta|v1}/models/{target}", "google"),),
    "vertex": ((_VERTEX_MODEL, "google"),),
}
_REQUEST_ID_HEADERS: dict[Dialect, str] = {"anthropic": "request-id", "bedrock": "x-amzn-RequestId"}


def build_fake_app(
    name: str,
    dialect: Dialect = "openai",
    *,
    defaults: Script | None = None,
    api_key: str | None = None,
    deployments: Mapping[str, str] | None = None,
    models: Sequence[str] | None = None,
    record_limit: int | None = None,
    aws: AwsTestCredentials | None = None,
    gcp_project: str | None = None,
    gcp_location: str | None = None,
) -> web.Application:
    """A fake upstream named ``name`` (``x-fake-<name>-<key>`` scripts it alone).

    ``api_key``: the key the client must present (OpenAI: ``Authorization: Bearer``;
    Azure: ``api-key`` or a Bearer token; Anthropic: ``x-api-key`` or a Bearer; Gemini:
    ``x-goog-api-key`` or ``?key=``; Vertex: the ``Authorization: Bearer`` access token;
    Bedrock: a ``Bearer`` API key accepted beside SigV4); ``None`` accepts any non-empty
    key. ``deployments`` (Azure): deployment -> model answered; ``None`` accepts any
    deployment and answers with its name. ``models``: the models accepted (OpenAI: and
    listed); ``None`` accepts any (and lists ``fake-model``). ``record_limit``: keep only
    the newest N requests (0: record nothing; ``None``: all). ``aws`` (Bedrock): the
    credentials requests must be SigV4-signed with (default
    ``AwsTestCredentials()``). ``gcp_project``/``gcp_location`` (Vertex): the project and
    location the path must name; ``None`` accepts any.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    config = FakeConfig(
        name=check_instance_name(name),
        dialect=dialect,
        api_key=api_key,
        deployments=dict(deployments) if deployments is not None else None,
        models=tuple(models) if models is not None else None,
        aws=(aws or AwsTestCredentials()) if dialect == "bedrock" else aws,
        gcp_project=gcp_project,
        gcp_location=gcp_location,
    )
    if dialect in ("anthropic", "bedrock", "vertex"):
        anthropic_shapes.warm()  # ~2 s once per process: not on the first request
    if dialect == "bedrock":
        service_model()
    listed = config.models or DEFAULT_MODELS
    if dialect == "azure" and config.deployments:
        listed = tuple(dict.fromkeys(config.deployments.values()))
    script = defaults or Script()
    state = FakeState(
        config=config,
        base_defaults=script,
        defaults=script,
        recorder=Recorder(record_limit),
        models_body=answers.model_list(listed, f"fake-{name}"),
    )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAKE_STATE] = state
    app.on_response_prepare.append(_stamp)
    if dialect == "openai":
        app.router.add_post("/v1/chat/completions", _endpoint("chat"))
        app.router.add_post("/v1/completions", _endpoint("completions"))
        app.router.add_post("/v1/embeddings", _endpoint("embeddings"))
        app.router.add_get("/v1/models", _endpoint("models"), allow_head=False)
        app.router.add_get("/v1/models/{model}", _endpoint("model"), allow_head=False)
    elif dialect == "azure":
        base = "/openai/deployments/{deployment}"
        app.router.add_post(base + "/chat/completions", _endpoint("chat"))
        app.router.add_post(base + "/completions", _endpoint("completions"))
        app.router.add_post(base + "/embeddings", _endpoint("embeddings"))
        app.router.add_get("/openai/models", _endpoint("models"), allow_head=False)
    else:
        for path, kind in _PROVIDER_ROUTES[dialect]:
            app.router.add_post(path, _endpoint(kind))
    app.router.add_get("/_fake/requests", _list_requests, allow_head=False)
    app.router.add_post("/_fake/reset", _reset)
    app.router.add_post("/_fake/script", _set_script)
    app.router.add_route("*", "/{tail:.*}", _endpoint("unknown"))
    return app


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    state = request.app[FAKE_STATE]
    response.headers["x-fake-instance"] = state.config.name
    request_id = f"req_{state.config.name}_{state.next_id()}"
    response.headers.setdefault("x-request-id", request_id)
    provider_header = _REQUEST_ID_HEADERS.get(state.config.dialect)
    if provider_header is not None:
        response.headers.setdefault(provider_header, request_id)


def _endpoint(kind: Kind) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await _serve(request, kind)

    return handler


async def _serve(request: web.Request, kind: Kind) -> web.StreamResponse:
    state = request.app[FAKE_STATE]
    raw = await request.read()
    body = _loads(raw) if raw else NOT_JSON
    if state.recorder.enabled:
        state.recorder.add(
            RecordedRequest(
                instance=state.config.name,
                method=request.method,
                path=request.path,
                query=request.query,
                headers=request.headers,
                body=raw,
                json=None if body is NOT_JSON else body,
            )
        )
    incoming = Incoming(
        kind, request.method, request.path, request.query, request.headers,
        request.match_info, body, raw_path=request.raw_path, raw_body=raw,
    )  # fmt: skip
    try:
        script = state.script_for(request.headers)
        call = admit(state.config, script, incoming)
    except ScriptError as exc:
        body = answers.fake_error("fake_script_invalid", str(exc))
        return web.Response(status=400, body=body, content_type=_JSON)
    except Rejected as rejected:
        response = web.Response(status=rejected.status, body=rejected.body, content_type=_JSON)
        response.headers.update(rejected.headers)
        return response
    state.in_flight += 1
    try:
        return await _answer(request, state, script, call)
    except (asyncio.CancelledError, ConnectionResetError):
        state.disconnects += 1  # handler cancellation, or a write to a closed socket
        raise
    finally:
        state.in_flight -= 1


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return NOT_JSON


async def _answer(
    request: web.Request, state: FakeState, script: Script, call: Call
) -> web.StreamResponse:
    if script.hang:
        await _until_gone(request, state)
        return web.Response(status=499)  # nobody is listening any more
    if script.delay_ms:
        await asyncio.sleep(script.delay_ms / 1000)
    if script.body is not None:
        content_type = script.content_type or _JSON
        if content_type.startswith("text/event-stream"):
            events = answers.sse_events(script.body)
            return await _stream(
                request, state, script, content_type, events, stall=script.stall_after
            )
        return _reply(script, script.body, content_type)
    if script.status >= 400:
        error, headers = replies.scripted_error(state.config.dialect, call, script.status)
        response = _reply(script, error)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response
    if state.config.dialect not in ("openai", "azure"):
        planned = replies.provider_reply(
            state.config, script, call, state.next_id(), int(script.delay_ms)
        )
        if isinstance(planned, replies.Streamed):
            return await _stream(
                request, state, script, planned.content_type, planned.events, stall=planned.stall
            )
        return _reply(script, planned.body, planned.content_type)
    if call.kind == "models":
        return _reply(script, state.models_body)
    if call.kind == "model":
        return _reply(
            script, orjson.dumps(answers.model_object(call.model, f"fake-{state.config.name}"))
        )
    if call.kind == "embeddings":
        return _reply(script, _embeddings(call))
    tokens, finish = script.chunks, "stop"
    if call.max_tokens is not None and call.max_tokens < tokens:
        tokens, finish = call.max_tokens, "length"
    chat = call.kind == "chat"
    tool = script.tool_call if chat and call.tools and finish == "stop" else None
    gen = answers.Generation(
        "chat" if chat else "text",
        call.model,
        tokens,
        call.choices,
        "tool_calls" if tool is not None else finish,
        tool,
    )
    usage = answers.usage_dict(
        call.prompt_tokens, tokens * call.choices, script.usage, details=chat
    )
    id_ = f"{'chatcmpl' if chat else 'cmpl'}-fake{state.config.name}{state.next_id()}"
    created = int(time.time())
    if not call.stream:
        return _reply(script, answers.completion_body(gen, id_=id_, created=created, usage=usage))
    events = answers.completion_events(
        gen, id_=id_, created=created, usage=usage if call.include_usage else None
    )
    stall = None
    if script.stall_after is not None:
        stall = answers.stall_index(gen, script.stall_after)
    return await _stream(request, state, script, _SSE, events, stall=stall)


def _reply(script: Script, body: bytes, content_type: str = _JSON) -> web.Response:
    response = web.Response(status=script.status, body=body, content_type=None)
    response.headers["Content-Type"] = content_type
    if script.headers:
        response.headers.update(script.headers)  # scripted headers win
    return response


def _embeddings(call: Call) -> bytes:
    emb = call.embedding
    assert emb is not None
    return answers.embedding_body(
        call.model,
        emb.items(),
        dims=emb.dimensions or EMBEDDING_DIMS,
        encoding=emb.encoding_format or "float",
        prompt_tokens=call.prompt_tokens,
    )


async def _stream(
    request: web.Request,
    state: FakeState,
    script: Script,
    content_type: str,
    events: Sequence[bytes],
    *,
    stall: int | None,
) -> web.StreamResponse:
    """Send ``events``; with ``stall``, stop after that many and keep the connection open."""
    response = web.StreamResponse(status=script.status)
    response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = "no-cache"
    if script.headers:
        response.headers.update(script.headers)  # scripted headers win
    delay = script.chunk_delay_ms / 1000
    try:
        await response.prepare(request)
        if stall is None and not delay:
            await response.write(b"".join(events))
        else:
            for i, event in enumerate(events):
                if stall is not None and i >= stall:
                    break
                if i and delay:
                    await asyncio.sleep(delay)
                await response.write(event)
            if stall is not None:
                await _until_gone(request, state)
                return response
        await response.write_eof()
    except ConnectionResetError:
        state.disconnects += 1  # the client went away mid-stream
    return response


async def _until_gone(request: web.Request, state: FakeState) -> None:
    """Wait until the client disconnects, polling: not every runner cancels handlers."""
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            state.disconnects += 1
            return
        await asyncio.sleep(_POLL_S)


# --- /_fake/ controls ----------------------------------------------------------------


async def _list_requests(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE]
    body = orjson.dumps([r.to_json() for r in state.recorder.all()])
    return web.Response(body=body, content_type=_JSON)


async def _reset(request: web.Request) -> web.Response:
    """Forget recorded requests and restore the build-time default script."""
    state = request.app[FAKE_STATE]
    state.recorder.clear()
    state.defaults = state.base_defaults
    return web.Response(body=b"{}", content_type=_JSON)


async def _set_script(request: web.Request) -> web.Response:
    """Body ``{"status": 503, ...}``: the build-time defaults plus these keys."""
    state = request.app[FAKE_STATE]
    body = _loads(await request.read())
    if not isinstance(body, dict):
        error = answers.fake_error("fake_script_invalid", "expected a JSON object of keys")
        return web.Response(status=400, body=error, content_type=_JSON)
    pairs = {str(k): v if isinstance(v, str) else encode_value(v) for k, v in body.items()}
    try:
        state.defaults = state.base_defaults.merged(pairs)
    except ScriptError as exc:
        error = answers.fake_error("fake_script_invalid", str(exc))
        return web.Response(status=400, body=error, content_type=_JSON)
    return web.Response(body=b"{}", content_type=_JSON)
