"""Shared by every OpenAI-schema backend: usage parsing, body rewrites, the stream tap.

Rewrites work on the raw bytes where they can, so the common request is forwarded as
received: adding `stream_options` splices bytes; only a model override re-serializes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from common import jsonutil
from common.sse import SSEDecoder
from tier1.providers.base import ParsedRequest, Translated, Usage

PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')


def usage_from(obj: Any) -> Usage | None:
    if not isinstance(obj, Mapping):
        return None
    prompt = obj.get("prompt_tokens")
    if not isinstance(prompt, int):
        return None
    completion = obj.get("completion_tokens")
    details = obj.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    out_details = obj.get("completion_tokens_details")
    reasoning = out_details.get("reasoning_tokens") if isinstance(out_details, Mapping) else None
    return Usage(
        input=prompt,
        cached_input=cached if isinstance(cached, int) else 0,
        output=completion if isinstance(completion, int) else 0,
        reasoning=reasoning if isinstance(reasoning, int) else 0,
    )


def request_body(req: ParsedRequest, *, upstream_model: str | None, force_usage: bool) -> bytes:
    """The body to send: the client's bytes unless the model or stream_options change."""
    add_usage = force_usage and req.stream and not req.include_usage
    if upstream_model is not None and upstream_model != req.model:
        body = dict(req.body)
        body["model"] = upstream_model
        if add_usage:
            options = body.get("stream_options")
            body["stream_options"] = {
                **(options if isinstance(options, Mapping) else {}),
                "include_usage": True,
            }
        return jsonutil.dumps(body)
    if not add_usage:
        return req.raw
    if "stream_options" in req.body:
        options = req.body["stream_options"]
        body = dict(req.body)
        body["stream_options"] = {
            **(options if isinstance(options, Mapping) else {}),
            "include_usage": True,
        }
        return jsonutil.dumps(body)
    raw = req.raw.lstrip()
    return b'{"stream_options":{"include_usage":true},' + raw[1:]


def rename_model(payload: bytes, model: str) -> bytes:
    """Put the client's model name back in an answer (first `model` field only)."""
    return _MODEL_FIELD.sub(b'"model":' + jsonutil.dumps(model), payload, count=1)


def response(req: ParsedRequest, body: bytes, *, renamed: bool) -> Translated:
    try:
        obj = jsonutil.loads(body)
    except ValueError:
        return Translated(body, None, None)
    usage = usage_from(obj.get("usage")) if isinstance(obj, dict) else None
    model = (
        obj.get("model") if isinstance(obj, dict) and isinstance(obj.get("model"), str) else None
    )
    if renamed:
        body = rename_model(body, req.model)
    return Translated(body, usage, model)


class OpenAIStreamTap:
    """Relays an OpenAI SSE stream: reads usage from the usage chunk, drops that chunk
    when only the gateway asked for it, and renames the model when overridden."""

    def __init__(self, *, client_model: str | None, hide_usage: bool) -> None:
        self._decoder = SSEDecoder()
        self._rename_to = client_model
        self._hide_usage = hide_usage
        self._tail = b""
        self._slow = client_model is not None
        """Event-by-event work is needed only to rename; otherwise whole runs of complete
        events are forwarded as they are and only a usage payload is parsed."""
        self.usage: Usage | None = None
        self.model: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self._slow:
            return self._relay(self._decoder.feed(chunk))
        buf = self._tail + chunk if self._tail else chunk
        if b"\r" in buf:  # CR line endings: hand everything to the full decoder
            self._slow, self._tail = True, b""
            return self._relay(self._decoder.feed(buf))
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self._tail = buf
            return b""
        complete, self._tail = buf[: cut + 2], buf[cut + 2 :]
        if self.model is None:
            self._find_model(complete)
        mentions = complete.count(b'"usage"')
        if mentions and mentions != complete.count(b'"usage":null') + complete.count(
            b'"usage": null'
        ):
            return self._relay(self._decoder.feed(complete))
        return complete

    def close(self) -> bytes:
        tail, self._tail = self._tail, b""
        out = self._relay(self._decoder.feed(tail)) if tail else b""
        return out + self._relay(self._decoder.flush())

    def _find_model(self, data: bytes) -> None:
        m = _MODEL_FIELD.search(data)
        if m:
            try:
                self.model = jsonutil.loads(b"{" + m.group(0) + b"}")["model"]
            except (ValueError, KeyError):
                pass

    def _relay(self, events: list[Any]) -> bytes:
        out = []
        for ev in events:
            data = ev.data
            raw = ev.raw
            if self.model is None and data.startswith(b"{"):
                self._find_model(data)
            if b'"usage"' in data and b'"usage":null' not in data and b'"usage": null' not in data:
                try:
                    obj = jsonutil.loads(data)
                except ValueError:
                    obj = None
                if isinstance(obj, dict):
                    usage = usage_from(obj.get("usage"))
                    if usage is not None:
                        self.usage = usage
                        if self._hide_usage and not obj.get("choices"):
                            continue
            if self._rename_to is not None and data.startswith(b"{"):
                raw = b"data: " + rename_model(data, self._rename_to) + b"\n\n"
            out.append(raw)
        return b"".join(out)


def error(status: int, body: bytes) -> tuple[int, bytes]:
    """Upstream errors in OpenAI's shape. A 401/403 means *our* credentials failed: the
    client gets a 502 that says so, never the provider's text (it may quote the key)."""
    if status in (401, 403):
        return 502, error_body(
            "the upstream rejected the gateway's credentials", "api_error", "upstream_auth_failed"
        )
    try:
        obj = jsonutil.loads(body)
    except ValueError:
        obj = None
    if (
        isinstance(obj, dict)
        and isinstance(obj.get("error"), dict)
        and isinstance(obj["error"].get("message"), str)
    ):
        e = obj["error"]
        clean = {
            "message": e["message"],
            "type": e.get("type") or "api_error",
            "param": e.get("param"),
            "code": e.get("code"),
        }
        return status, jsonutil.dumps({"error": clean})
    return status, error_body(f"upstream answered HTTP {status}", "api_error", "upstream_error")


def error_body(message: str, type_: str, code: str, param: str | None = None) -> bytes:
    return jsonutil.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )
