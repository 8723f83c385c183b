"""Gemini `generateContent` answers and errors → OpenAI chat shapes, shared by the Gemini
API and Vertex AI (one response schema; https://ai.google.dev/api/generate-content#response-body).

    candidates[i]              → choices[i]: text parts joined into `content`, thought
                                 parts into `reasoning_content`, functionCall parts into
                                 `tool_calls` (ids `call_<n>`, arguments as a JSON
                                 string, thoughtSignature → extra_content.google)
    finishReason               → `FINISH_REASONS` (STOP with calls → tool_calls)
    promptFeedback.blockReason → one empty choice with finish_reason content_filter
    usageMetadata              → usage (cached and reasoning tokens in the details)
    {"error": {code, message, status}} → OpenAI's error body, status kept
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from common import jsonutil
from common.errors import UpstreamError
from tier1.providers import _openai_common as oa
from tier1.providers.base import Usage

FINISH_REASONS = {
    # https://ai.google.dev/api/generate-content#FinishReason; anything else → "stop"
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
}


def finish_reason(reason: Any, *, tool_calls: bool) -> str:
    mapped = FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if mapped == "stop" and tool_calls else mapped


def completion_id(obj: Mapping[str, Any]) -> str:
    rid = obj.get("responseId")
    return "chatcmpl-" + (rid if isinstance(rid, str) and rid else uuid.uuid4().hex)


def _int(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from(meta: Any) -> Usage | None:
    """usageMetadata → Usage. Output counts the thoughts too (Gemini bills them as
    output); the tool-use prompt tokens count as input, so the total matches Gemini's."""
    if not isinstance(meta, Mapping):
        return None
    thoughts = _int(meta, "thoughtsTokenCount")
    return Usage(
        input=_int(meta, "promptTokenCount") + _int(meta, "toolUsePromptTokenCount"),
        cached_input=_int(meta, "cachedContentTokenCount"),
        output=_int(meta, "candidatesTokenCount") + thoughts,
        reasoning=thoughts,
    )


def usage_json(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.total,
        "prompt_tokens_details": {"cached_tokens": u.cached_input},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    }


def tool_call(n: int, call: Mapping[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    """A functionCall part → an OpenAI tool call with the generated id `call_<n>`."""
    out: dict[str, Any] = {
        "id": f"call_{n}",
        "type": "function",
        "function": {
            "name": call.get("name") if isinstance(call.get("name"), str) else "",
            "arguments": jsonutil.dumps(call.get("args") or {}).decode(),
        },
    }
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def candidates_of(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = obj.get("candidates")
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


def parts_of(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []


def _choice(candidate: Mapping[str, Any], index: int) -> dict[str, Any]:
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts_of(candidate):
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            calls.append(tool_call(len(calls), call, part))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") is True else text).append(part["text"])
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) if text or not calls else None,
    }
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return {
        "index": index,
        "message": message,
        "finish_reason": finish_reason(candidate.get("finishReason"), tool_calls=bool(calls)),
        "logprobs": None,
    }


def blocked(obj: Mapping[str, Any]) -> bool:
    """No candidates because the prompt itself was blocked (promptFeedback.blockReason)."""
    feedback = obj.get("promptFeedback")
    return not candidates_of(obj) and isinstance(feedback, Mapping) and "blockReason" in feedback


def chat_completion(
    body: bytes, *, model: str | None, fallback_model: str, created: int
) -> tuple[bytes, Usage | None, str | None]:
    """A GenerateContentResponse → (chat.completion bytes, usage, upstream modelVersion).
    `model` (the client's name after an override) beats modelVersion in the body."""
    try:
        obj = jsonutil.loads(body)
    except ValueError:
        obj = None
    if not isinstance(obj, Mapping):
        raise UpstreamError("the upstream answered with a body that is not a JSON object")
    version = obj.get("modelVersion") if isinstance(obj.get("modelVersion"), str) else None
    candidates = candidates_of(obj)
    if candidates:
        choices = [_choice(c, _int(c, "index") or i) for i, c in enumerate(candidates)]
    else:
        # a blocked prompt, or (rarely) nothing at all: an empty, filtered answer
        reason = "content_filter" if blocked(obj) else "stop"
        choices = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "finish_reason": reason,
                "logprobs": None,
            }
        ]
    usage = usage_from(obj.get("usageMetadata"))
    out = {
        "id": completion_id(obj),
        "object": "chat.completion",
        "created": created,
        "model": model or version or fallback_model,
        "choices": choices,
        "usage": usage_json(usage or Usage()),
    }
    return jsonutil.dumps(out), usage, version


# ---------------------------------------------------------------- errors

_ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "NOT_FOUND": "invalid_request_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
}
_AUTH_STATUSES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
# Gemini answers a bad key with 400 INVALID_ARGUMENT and this reason in `details`
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"})


def google_error(body: bytes) -> Mapping[str, Any] | None:
    """`{"error": {code, message, status, details}}`, or Vertex's `[{"error": …}]`."""
    try:
        obj = jsonutil.loads(body)
    except ValueError:
        return None
    if isinstance(obj, list) and obj:
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, Mapping) else None
    return err if isinstance(err, Mapping) else None


def _auth_failure(err: Mapping[str, Any]) -> bool:
    if err.get("status") in _AUTH_STATUSES:
        return True
    details = err.get("details")
    return isinstance(details, list) and any(
        isinstance(d, Mapping) and d.get("reason") in _AUTH_REASONS for d in details
    )


def error(status: int, body: bytes) -> tuple[int, bytes]:
    """A Google error → OpenAI's error shape, status kept. A credential failure (401,
    403, or a 400 whose reason is a bad key) becomes a generic 502: its text is about
    the gateway's key, never the client's business."""
    err = google_error(body)
    if status in (401, 403) or (err is not None and _auth_failure(err)):
        return 502, oa.error_body(
            "the upstream rejected the gateway's credentials", "api_error", "upstream_auth_failed"
        )
    message = err.get("message") if err is not None else None
    if err is None or not isinstance(message, str):
        return status, oa.error_body(
            f"upstream answered HTTP {status}", "api_error", "upstream_error"
        )
    raw_name = err.get("status")
    name = raw_name if isinstance(raw_name, str) else ""
    type_ = _ERROR_TYPES.get(name) or ("invalid_request_error" if status < 500 else "api_error")
    code = "rate_limit_exceeded" if name == "RESOURCE_EXHAUSTED" else (name.lower() or None)
    return status, oa.error_body(message, type_, code or "upstream_error")
