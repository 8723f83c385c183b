"""Shared by every Anthropic-schema backend (Anthropic, Claude on Vertex): OpenAI chat
request → Messages request, Messages response → `chat.completion`, errors → OpenAI's shape.

Pure functions over plain dicts; the original request is never changed in place, so a
retry translates again from the same input. Reference for every field below:
https://docs.anthropic.com/en/api/messages (request, response, usage) and
https://docs.anthropic.com/en/api/errors (error body, 529 overloaded).
Message and tool conversion is in `_anthropic_content.py`, the stream in `_anthropic_stream.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from common import jsonutil
from common.errors import BadRequest, UpstreamError
from tier1.providers import _anthropic_content as content
from tier1.providers import _openai_common as oa
from tier1.providers.base import ParsedRequest, Usage

ANTHROPIC_VERSION: Final = "2023-06-01"
"""The `anthropic-version` header of the direct API."""

DROPPED_FIELDS: Final = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "stream_options",  # Anthropic always reports usage in a stream
        "service_tier",  # values differ (auto/default/flex vs auto/standard_only)
        "store",
        "metadata",  # Anthropic's metadata takes only user_id (mapped from `user`)
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
        "functions",  # legacy function calling: use `tools`
        "function_call",
    }
)
"""OpenAI chat fields that have no Anthropic equivalent. The Messages API rejects unknown
fields, so the request is built from the fields we map and these are not forwarded (any
other unknown field is dropped as well; this list documents the known ones). Also
dropped: `response_format` of type text/json_object, and an assistant message's `name`
and `reasoning_content` (a thinking block cannot be sent back without its signature)."""

EFFORT_BUDGET: Final = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 16384}
"""`reasoning_effort` → extended-thinking `budget_tokens` (our choice, not Anthropic's:
1024 is the documented minimum). "none"/"minimal" send no `thinking`."""
MIN_THINKING_BUDGET: Final = 1024

FINISH_REASONS: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_ERROR_TYPES: Final = {
    "invalid_request_error": "invalid_request_error",
    "not_found_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
}


def require_chat(req: ParsedRequest) -> None:
    if req.endpoint != "chat":
        raise BadRequest(
            f"Anthropic backends serve only /v1/chat/completions, not the {req.endpoint} "
            "endpoint; route this model to an OpenAI-schema backend"
        )


# --- request ---------------------------------------------------------------------------


def chat_to_messages(
    body: Mapping[str, Any], *, model: str | None, default_max_tokens: int
) -> dict[str, Any]:
    """An OpenAI chat request → a Messages request (`model` None: leave it out, as
    Vertex wants). Raises BadRequest naming the field Anthropic cannot take."""
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("Anthropic backends return one choice; `n` must be 1", param="n")
    system, messages = content.convert_messages(body.get("messages"))
    client_max = body.get("max_completion_tokens") or body.get("max_tokens")
    max_tokens = client_max if isinstance(client_max, int) else default_max_tokens
    thinking = body.get("thinking")
    if thinking is not None and not isinstance(thinking, Mapping):
        raise BadRequest("`thinking` must be an object", param="thinking")
    if thinking is None:
        thinking, max_tokens = _thinking_from_effort(
            body.get("reasoning_effort"), max_tokens, client_set=isinstance(client_max, int)
        )
    elif not isinstance(client_max, int) and isinstance(thinking.get("budget_tokens"), int):
        max_tokens += thinking["budget_tokens"]  # the default stays room for the answer

    out: dict[str, Any] = {}
    if model is not None:
        out["model"] = model
    out["max_tokens"] = max_tokens
    if system:
        out["system"] = system[0]["text"] if content.plain_text(system) else system
    out["messages"] = messages
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = stop
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue  # never send a default: newer models reject sampling parameters
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise BadRequest(f"`{name}` must be a number", param=name)
        out[name] = min(value, 1.0)  # OpenAI allows temperature up to 2, Anthropic 1
    top_k = body.get("top_k")
    if isinstance(top_k, int) and not isinstance(top_k, bool):
        out["top_k"] = top_k
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise BadRequest("`tools` must be an array", param="tools")
        out["tools"] = [content.tool(t, i) for i, t in enumerate(tools)]
        choice = content.tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    output_format = content.output_format(body.get("response_format"))
    if output_format is not None:
        # structured outputs: https://docs.anthropic.com/en/docs/build-with-claude/structured-outputs
        out["output_config"] = {"format": output_format}
    if thinking is not None:
        out["thinking"] = dict(thinking)
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _thinking_from_effort(
    effort: Any, max_tokens: int, *, client_set: bool
) -> tuple[dict[str, Any] | None, int]:
    if effort is None or effort in ("none", "minimal"):
        return None, max_tokens
    budget = EFFORT_BUDGET.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise BadRequest(
            "`reasoning_effort` must be one of none, minimal, low, medium, high, xhigh",
            param="reasoning_effort",
        )
    # thinking counts toward max_tokens and budget_tokens must stay below it
    if not client_set:
        return {"type": "enabled", "budget_tokens": budget}, max_tokens + budget
    budget = min(budget, max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        return None, max_tokens  # too small a max_tokens to think at all
    return {"type": "enabled", "budget_tokens": budget}, max_tokens


# --- response --------------------------------------------------------------------------


def usage_from(obj: Any) -> Usage | None:
    """Anthropic usage → ours. Our input counts cache reads and writes too (Anthropic's
    `input_tokens` excludes both); reasoning is `output_tokens_details.thinking_tokens`."""
    if not isinstance(obj, Mapping):
        return None

    def num(name: str) -> int:
        value = obj.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    details = obj.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, Mapping) else None
    return Usage(
        input=num("input_tokens")
        + num("cache_read_input_tokens")
        + num("cache_creation_input_tokens"),
        cached_input=num("cache_read_input_tokens"),
        output=num("output_tokens"),
        reasoning=thinking if isinstance(thinking, int) else 0,
    )


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.total,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    }


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def messages_to_chat_response(
    msg: Mapping[str, Any], *, model: str, created: int
) -> tuple[dict[str, Any], Usage | None]:
    """A Messages response → (`chat.completion`, usage)."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg.get("content") or []:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": jsonutil.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    usage = usage_from(msg.get("usage"))
    out: dict[str, Any] = {
        "id": msg.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(msg.get("stop_reason")),
            }
        ],
    }
    if usage is not None:
        out["usage"] = openai_usage(usage)
    return out, usage


def parse_message(body: bytes) -> dict[str, Any]:
    """A successful Messages answer, or UpstreamError when it is not one."""
    try:
        obj = jsonutil.loads(body)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or obj.get("type") != "message":
        raise UpstreamError("the upstream's answer is not a Messages response", retryable=False)
    return obj


# --- errors ----------------------------------------------------------------------------


def openai_error_fields(err: Any) -> dict[str, Any] | None:
    """Anthropic's {"type", "message"} error object → OpenAI's error object (or None)."""
    if not isinstance(err, Mapping) or not isinstance(err.get("message"), str):
        return None
    kind = err.get("type") or err.get("status")  # Anthropic's type, or Google's status
    kind = kind if isinstance(kind, str) else "api_error"
    return {
        "message": err["message"],
        "type": _ERROR_TYPES.get(kind, "api_error"),
        "param": None,
        "code": kind,
    }


def error(status: int, body: bytes) -> tuple[int, bytes]:
    """Anthropic error body → OpenAI error body, same status (529 overloaded stays 529).
    401/403 mean the gateway's credentials failed: a 502 that never echoes the text."""
    if status in (401, 403):
        return oa.error(status, body)
    try:
        obj = jsonutil.loads(body)
    except ValueError:
        obj = None
    if isinstance(obj, list) and obj:  # Vertex wraps Google errors in a one-item list
        obj = obj[0]
    fields = openai_error_fields(obj.get("error")) if isinstance(obj, dict) else None
    if fields is None:
        return oa.error(status, body)  # not Anthropic's shape: the generic fallbacks
    return status, jsonutil.dumps({"error": fields})
