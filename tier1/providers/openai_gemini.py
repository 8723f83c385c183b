"""OpenAI chat ingress → Gemini `generateContent` on the Gemini API (schema `gemini`) or
on Vertex AI (schema `vertex`). Both speak one request/response schema
(`_gemini_common`); they differ only in the URL and in auth, which the caller adds
(`x-goog-api-key` for the Gemini API, an OAuth bearer for Vertex).

Streams use `:streamGenerateContent?alt=sse`: every `data:` event is a whole
GenerateContentResponse holding the *new* text since the last one, a complete
functionCall part, and the running usageMetadata (the last one is final). `GeminiStream`
turns them into OpenAI chunks: the role first, then text / reasoning / one complete
tool_calls delta per call (its own index), the finish_reason chunk, the usage chunk if
the client asked for it, and `[DONE]`. A stream that ends without a finishReason gets
no `[DONE]`, so the client can tell it was cut off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from common import jsonutil
from common.sse import SSEDecoder, encode_data
from tier1.providers import _gemini_common as gc
from tier1.providers import _gemini_request as gr
from tier1.providers.base import ParsedRequest, StreamTranslator, Translated, UpstreamRequest, Usage

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"


def vertex_base_url(region: str) -> str:
    """Vertex's regional host; the `global` location has none
    (https://cloud.google.com/vertex-ai/generative-ai/docs/learn/locations)."""
    if region == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{region}-aiplatform.googleapis.com"


def _model_id(model: str) -> str:
    for prefix in ("publishers/google/models/", "models/"):
        if model.startswith(prefix):
            model = model[len(prefix) :]
    return quote(model, safe="@")


class _GenerateContent:
    """The Translator methods both schemas share; subclasses say where to send."""

    __slots__ = ()
    clock: Callable[[], float]

    def model_url(self, model: str) -> str:
        raise NotImplementedError

    def request(
        self, req: ParsedRequest, *, upstream_model: str, force_usage: bool
    ) -> UpstreamRequest:
        # force_usage needs nothing: Gemini always sends usageMetadata
        body = jsonutil.dumps(gr.request_body(req))
        if req.stream:
            url = self.model_url(upstream_model) + ":streamGenerateContent?alt=sse"
            headers = {"content-type": "application/json", "accept": "text/event-stream"}
        else:
            url = self.model_url(upstream_model) + ":generateContent"
            headers = {"content-type": "application/json"}
        return UpstreamRequest("POST", url, headers, body)

    def response(self, req: ParsedRequest, status: int, body: bytes, *, rename: bool) -> Translated:
        out, usage, version = gc.chat_completion(
            body,
            model=req.model if rename else None,
            fallback_model=req.model,
            created=int(self.clock()),
        )
        return Translated(out, usage, version)

    def stream(self, req: ParsedRequest, *, rename: bool) -> StreamTranslator:
        return GeminiStream(
            client_model=req.model if rename else None,
            fallback_model=req.model,
            include_usage=req.include_usage,
            created=int(self.clock()),
        )

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return gc.error(status, body)


@dataclass(frozen=True, slots=True)
class ChatToGemini(_GenerateContent):
    """The Gemini API (AI Studio): `{base}/v1beta/models/{model}:generateContent`."""

    base_url: str = GEMINI_BASE_URL
    """Root of the API; a base that already ends in a version (/v1, /v1beta) keeps it."""
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def model_url(self, model: str) -> str:
        base = self.base_url.rstrip("/")
        if not base.endswith(("/v1", "/v1beta", "/v1alpha")):
            base += "/v1beta"
        if model.startswith("tunedModels/"):
            return f"{base}/{quote(model, safe='/')}"
        return f"{base}/models/{_model_id(model)}"


@dataclass(frozen=True, slots=True)
class ChatToVertex(_GenerateContent):
    """Vertex AI: `{base}/v1/projects/{project}/locations/{region}/publishers/google/
    models/{model}:generateContent`."""

    base_url: str
    """Usually `vertex_base_url(region)`; a base ending in /v1 keeps it."""
    project: str
    region: str
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def model_url(self, model: str) -> str:
        base = self.base_url.rstrip("/")
        if base.endswith("/v1"):
            base = base[:-3]
        return (
            f"{base}/v1/projects/{quote(self.project, safe='')}/locations/"
            f"{quote(self.region, safe='')}/publishers/google/models/{_model_id(model)}"
        )


@dataclass(slots=True)
class _Choice:
    tool_calls: int = 0
    finished: bool = False


class GeminiStream:
    """Gemini SSE (split anywhere) → OpenAI chat.completion.chunk SSE."""

    def __init__(
        self, *, client_model: str | None, fallback_model: str, include_usage: bool, created: int
    ) -> None:
        self._decoder = SSEDecoder()
        self._client_model = client_model
        self._fallback_model = fallback_model
        self._include_usage = include_usage
        self._created = created
        self._id: str | None = None
        self._out_model = ""
        self._choices: dict[int, _Choice] = {}
        self._failed = False
        self.usage: Usage | None = None
        self.model: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        return self._translate(self._decoder.feed(chunk))

    def close(self) -> bytes:
        out = self._translate(self._decoder.flush())
        if self._failed or not self._choices or not all(c.finished for c in self._choices.values()):
            return out
        if self._include_usage:
            out += self._chunk([], usage=gc.usage_json(self.usage or Usage()))
        return out + encode_data(b"[DONE]")

    def _translate(self, events: list[Any]) -> bytes:
        out: list[bytes] = []
        for ev in events:
            data = ev.data.strip()
            if self._failed or not data.startswith((b"{", b"[")):
                continue  # comments, keep-alives, anything after an error
            try:
                obj = jsonutil.loads(data)
            except ValueError:
                continue
            for item in obj if isinstance(obj, list) else [obj]:
                if isinstance(item, Mapping):
                    self._response(item, out)
        return b"".join(out)

    def _chunk(self, choices: list[dict[str, Any]], *, usage: Any = None) -> bytes:
        obj: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._out_model,
            "choices": choices,
        }
        if self._include_usage:
            obj["usage"] = usage
        return encode_data(jsonutil.dumps(obj))

    def _delta(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._chunk([{"index": index, "delta": delta, "finish_reason": finish}])

    def _response(self, obj: Mapping[str, Any], out: list[bytes]) -> None:
        if "error" in obj:
            err = obj["error"]
            code = err.get("code") if isinstance(err, Mapping) else None
            status = code if isinstance(code, int) else 500
            out.append(encode_data(gc.error(status, jsonutil.dumps({"error": err}))[1]))
            self._failed = True
            return
        if self._id is None:
            self._id = gc.completion_id(obj)
            version = obj.get("modelVersion")
            self.model = version if isinstance(version, str) else None
            self._out_model = self._client_model or self.model or self._fallback_model
        usage = gc.usage_from(obj.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        candidates = gc.candidates_of(obj)
        if not candidates and gc.blocked(obj):
            choice = self._start(0, out)
            if not choice.finished:
                choice.finished = True
                out.append(self._delta(0, {}, "content_filter"))
            return
        for position, cand in enumerate(candidates):
            index = cand.get("index")
            index = index if isinstance(index, int) and not isinstance(index, bool) else position
            self._candidate(index, cand, out)

    def _start(self, index: int, out: list[bytes]) -> _Choice:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice()
            out.append(self._delta(index, {"role": "assistant", "content": ""}))
        return choice

    def _candidate(self, index: int, cand: Mapping[str, Any], out: list[bytes]) -> None:
        choice = self._start(index, out)
        if choice.finished:
            return
        for part in gc.parts_of(cand):
            call = part.get("functionCall")
            if isinstance(call, Mapping):
                delta = {"index": choice.tool_calls, **gc.tool_call(choice.tool_calls, call, part)}
                choice.tool_calls += 1
                out.append(self._delta(index, {"tool_calls": [delta]}))
            elif isinstance(part.get("text"), str) and part["text"]:
                key = "reasoning_content" if part.get("thought") is True else "content"
                out.append(self._delta(index, {key: part["text"]}))
        reason = cand.get("finishReason")
        if isinstance(reason, str) and reason:
            choice.finished = True
            finish = gc.finish_reason(reason, tool_calls=choice.tool_calls > 0)
            out.append(self._delta(index, {}, finish))
