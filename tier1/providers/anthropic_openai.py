"""Anthropic Messages ingress → OpenAI-chat backends: for clients of the anthropic SDK
calling tier1's `/v1/messages`. Pure functions over dicts; the stream state machine is
`ChatStreamToMessagesStream` (in `_chat_stream_to_messages.py`, re-exported here).

Request fields follow https://docs.anthropic.com/en/api/messages. Anthropic fields with
no OpenAI equivalent are dropped (`DROPPED_FIELDS`); server tools (web search, code
execution, …) cannot run on an OpenAI backend and are refused with a 400.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final, Literal

from common import jsonutil
from common.errors import BadRequest
from tier1.providers import _openai_common as oa
from tier1.providers._chat_stream_to_messages import (
    ChatStreamToMessagesStream,
    anthropic_error_body,
    error_type_for_status,
    stop_reason,
)

__all__ = [
    "DROPPED_FIELDS",
    "ChatStreamToMessagesStream",
    "anthropic_error_body",
    "chat_to_messages_response",
    "count_tokens_estimate",
    "error_type_for_status",
    "messages_to_chat",
    "openai_error_to_anthropic",
]

DROPPED_FIELDS: Final = frozenset(
    {
        "top_k",  # OpenAI rejects it
        "container",
        "mcp_servers",
        "context_management",
        "service_tier",
        "inference_geo",
        "cache_control",  # prompt caching is automatic or absent on OpenAI backends
        "speed",
        "diagnostics",
    }
)
"""Anthropic request fields with no OpenAI-chat equivalent (not forwarded). Also dropped:
thinking/redacted_thinking blocks in the history, `is_error` and images of tool results
(OpenAI tool messages carry text only), `cache_control` and `citations` on blocks."""

_EFFORTS: Final = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def messages_to_chat(
    body: Mapping[str, Any],
    *,
    upstream_model: str,
    force_usage: bool,
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
) -> dict[str, Any]:
    """An Anthropic Messages request → an OpenAI chat request. `max_tokens_field` picks
    the OpenAI name (OpenAI's reasoning models accept only max_completion_tokens)."""
    out: dict[str, Any] = {"model": upstream_model}
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _system_content(system)})
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("`messages` must be a non-empty array", param="messages")
    for i, m in enumerate(raw):
        messages.extend(_message(m, f"messages[{i}]"))
    out["messages"] = messages
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
        out[max_tokens_field] = max_tokens
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and stops:
        out["stop"] = stops
    for name in ("temperature", "top_p"):
        if isinstance(body.get(name), int | float):
            out[name] = body[name]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
        _tool_choice(body.get("tool_choice"), out)
    effort = _effort(body)
    if effort is not None:
        out["reasoning_effort"] = effort
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": fmt.get("schema"), "strict": True},
        }
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if body.get("stream") is True:
        out["stream"] = True
        if force_usage:
            out["stream_options"] = {"include_usage": True}
    return out


def _system_content(system: Any) -> Any:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise BadRequest("`system` must be a string or an array of text blocks", param="system")
    texts = [b["text"] for b in system if isinstance(b, Mapping) and isinstance(b.get("text"), str)]
    if len(texts) == 1:
        return texts[0]
    return [{"type": "text", "text": t} for t in texts]


def _message(m: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(m, Mapping):
        raise BadRequest("each message must be an object", param=where)
    role, content = m.get("role"), m.get("content")
    if role not in ("user", "assistant", "system"):
        raise BadRequest("`role` must be user or assistant", param=f"{where}.role")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise BadRequest("`content` must be a string or an array of blocks", param=where)
    if role == "system":
        return [{"role": "system", "content": _system_content(content)}]
    if role == "assistant":
        return [_assistant(content, where)]
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "tool_result":
            tool_messages.append(_tool_message(block, at))
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block.get("source"), at))
        elif kind == "document":
            parts.append(_document_part(block.get("source"), at))
        else:
            raise BadRequest(f"content block type {kind!r} is not supported here", param=at)
    out = tool_messages  # OpenAI wants tool answers right after the assistant's calls
    if parts:
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        out.append({"role": "user", "content": parts[0]["text"] if only_text else parts})
    return out


def _assistant(content: list[Any], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
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
        elif kind not in ("thinking", "redacted_thinking"):
            raise BadRequest(
                f"content block type {kind!r} is not supported here", param=f"{where}.content[{j}]"
            )
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    elif msg["content"] is None:
        msg["content"] = ""
    return msg


def _tool_message(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        content = "".join(
            b["text"] for b in content if isinstance(b, Mapping) and isinstance(b.get("text"), str)
        )
    elif not isinstance(content, str):
        content = ""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise BadRequest("a tool_result needs `tool_use_id`", param=f"{where}.tool_use_id")
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _image_part(source: Any, where: str) -> dict[str, Any]:
    if isinstance(source, Mapping) and source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif isinstance(source, Mapping) and source.get("type") == "url":
        url = str(source.get("url"))
    else:
        raise BadRequest("images must have a base64 or url source", param=f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(source: Any, where: str) -> dict[str, Any]:
    if isinstance(source, Mapping) and source.get("type") == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    if isinstance(source, Mapping) and source.get("type") == "base64":
        data_url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return {"type": "file", "file": {"file_data": data_url}}
    raise BadRequest("documents must have a base64 or text source", param=f"{where}.source")


def _tool(t: Any, i: int) -> dict[str, Any]:
    if not isinstance(t, Mapping) or t.get("type") not in (None, "custom"):
        kind = t.get("type") if isinstance(t, Mapping) else None
        raise BadRequest(
            f"server tool {kind!r} cannot run on an OpenAI-schema backend", param=f"tools[{i}]"
        )
    fn: dict[str, Any] = {"name": t.get("name")}
    if isinstance(t.get("description"), str):
        fn["description"] = t["description"]
    fn["parameters"] = t.get("input_schema") or {"type": "object", "properties": {}}
    if t.get("strict") is True:
        fn["strict"] = True
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if not isinstance(choice, Mapping):
        return
    kind = choice.get("type")
    if kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif kind in ("auto", "any", "none"):
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def _effort(body: Mapping[str, Any]) -> str | None:
    """`output_config.effort`, else the thinking budget bucketed as Strata's OpenAI →
    Anthropic mapping spends it (1024/4096/16384); adaptive thinking sets nothing."""
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, Mapping) else None
    if isinstance(effort, str) and effort in _EFFORTS:
        return _EFFORTS[effort]
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def chat_to_messages_response(chat: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """An OpenAI `chat.completion` → an Anthropic `message` (`model` is what the client
    sees). Tool-call arguments that are not a JSON object arrive as {"_raw": text}."""
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") if isinstance(choice, Mapping) else None
    message = message if isinstance(message, Mapping) else {}
    blocks: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content") or message.get("refusal")
    if isinstance(text, str) and text:
        blocks.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": fn.get("name"),
                "input": _arguments(fn.get("arguments")),
            }
        )
    finish = choice.get("finish_reason") if isinstance(choice, Mapping) else None
    if message.get("refusal") and not message.get("content"):
        finish = "content_filter"
    return {
        "id": chat.get("id"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason(finish, tools=any(b["type"] == "tool_use" for b in blocks)),
        "stop_sequence": None,
        "usage": _usage(chat.get("usage")),
    }


def _arguments(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        parsed = jsonutil.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        parsed = None
    return dict(parsed) if isinstance(parsed, Mapping) else {"_raw": raw}


def _usage(obj: Any) -> dict[str, int]:
    usage = oa.usage_from(obj)
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": usage.input - usage.cached_input,  # Anthropic's excludes cache reads
        "output_tokens": usage.output,
        "cache_read_input_tokens": usage.cached_input,
    }


def openai_error_to_anthropic(status: int, body: bytes) -> tuple[int, bytes]:
    """An OpenAI-shaped upstream error → Anthropic's error body, same status. 401/403 are
    the gateway's credentials failing: a 502 that never echoes the upstream's text."""
    if status in (401, 403):
        return 502, anthropic_error_body(
            "api_error", "the upstream rejected the gateway's credentials"
        )
    try:
        obj = jsonutil.loads(body)
    except ValueError:
        obj = None
    err = obj.get("error") if isinstance(obj, dict) else None
    message = err.get("message") if isinstance(err, Mapping) else None
    if not isinstance(message, str) or not message:
        message = f"upstream answered HTTP {status}"
    return status, anthropic_error_body(error_type_for_status(status), message)


# --- count_tokens ----------------------------------------------------------------------

CHARS_PER_TOKEN: Final = 4
IMAGE_TOKENS: Final = 1600
"""Flat charge per image or document (Anthropic's documented cap for a resized image)."""


def count_tokens_estimate(body: Mapping[str, Any]) -> int:
    """An ESTIMATE of a Messages request's input tokens for `/v1/messages/count_tokens`
    on backends that cannot count: ~4 characters per token over the system prompt, the
    messages' text, tool inputs/results and the tool schemas, plus a flat charge per
    image. Real tokenizers differ, by tens of percent for code or non-English text."""
    chars = 0
    images = 0

    def walk(value: Any) -> None:
        nonlocal chars, images
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, Mapping):
            kind = value.get("type")
            if kind in ("image", "document") and isinstance(value.get("source"), Mapping):
                if value["source"].get("type") != "text":
                    images += 1
                    return
            for key in ("text", "content", "thinking"):
                walk(value.get(key))
            if kind == "tool_use":
                chars += len(jsonutil.dumps(value.get("input") or {}))
            if "source" in value and isinstance(value["source"], Mapping):
                walk(value["source"].get("data"))

    walk(body.get("system"))
    walk(body.get("messages"))
    for tool in body.get("tools") or []:
        if isinstance(tool, Mapping):
            chars += len(
                jsonutil.dumps({k: tool.get(k) for k in ("name", "description", "input_schema")})
            )
    return max(1, math.ceil(chars / CHARS_PER_TOKEN)) + images * IMAGE_TOKENS
