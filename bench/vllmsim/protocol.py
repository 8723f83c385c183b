"""OpenAI-schema request parsing and response shapes, as vLLM's OpenAI server produces them.

Pure functions: bytes or dicts in, typed values or bytes out. The HTTP shell in
``server.py`` only moves these bytes. Error messages copy vLLM's wording where clients
or tests may match on it (context-length and unknown-model errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bench.vllmsim import tokenizer

__all__ = [
    "ApiError",
    "CompletionRequest",
    "StreamFormatter",
    "error_body",
    "parse_request",
    "usage_dict",
]


class ApiError(Exception):
    """An error answered to the client with vLLM's error body."""

    def __init__(self, status: int, message: str, err_type: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type


def error_body(status: int, message: str, err_type: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": err_type, "param": None, "code": status}}
    )


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    chat: bool
    model: str
    prompt_ids: list[int]
    max_tokens: int
    stream: bool
    include_usage: bool
    ignore_eos: bool
    echo_text: str
    """What echo mode answers: the last user message (chat) or the prompt (completions)."""


def _bad(msg: str) -> ApiError:
    return ApiError(400, msg)


def _int_field(body: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        v = body.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise _bad(f"{name} must be an integer")
        return int(v)
    return None


def parse_request(
    raw: bytes, *, chat: bool, served: Mapping[str, bool], max_model_len: int
) -> CompletionRequest:
    """Validate a chat or completions body. ``served`` maps model names to True.

    Raises :class:`ApiError` for anything vLLM would reject: malformed JSON (400),
    unknown model (404), prompt plus ``max_tokens`` over ``max_model_len`` (400).
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"JSON decode error: {exc}") from None
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str):
        raise _bad("model is required and must be a string")
    if model not in served:
        raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError")
    n = body.get("n", 1)
    if n not in (None, 1):
        raise _bad("only n=1 is supported by the simulator")
    stream = body.get("stream") is True
    opts = body.get("stream_options")
    include_usage = bool(isinstance(opts, dict) and opts.get("include_usage") is True)
    if opts is not None and not stream:
        raise _bad("Stream options can only be defined when `stream=True`.")
    ignore_eos = body.get("ignore_eos") is True

    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad("messages must be a non-empty list")
        try:
            prompt_ids = tokenizer.encode_chat(messages)
        except tokenizer.ChatFormatError as exc:
            raise _bad(str(exc)) from None
        echo = ""
        for msg in reversed(messages):
            if msg.get("role") == "user":
                echo = tokenizer.content_text(msg.get("content"))
                break
        max_tokens = _int_field(body, "max_completion_tokens", "max_tokens")
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if isinstance(prompt, str):
            prompt_ids = tokenizer.encode(prompt)
            echo = prompt
        elif (
            isinstance(prompt, list)
            and prompt
            and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
        ):
            prompt_ids = list(prompt)
            echo = ""
        else:
            raise _bad("prompt must be a string, a list with one string, or a list of token ids")
        max_tokens = _int_field(body, "max_tokens")
        if max_tokens is None:
            max_tokens = 16  # the OpenAI completions default, which vLLM keeps
    if not prompt_ids:
        raise _bad("prompt must not be empty")
    n_prompt = len(prompt_ids)
    if max_tokens is None:
        if n_prompt >= max_model_len:
            raise _bad(
                f"This model's maximum context length is {max_model_len} tokens. However, you "
                f"requested {n_prompt} tokens in the messages, Please reduce the length of the "
                "messages."
            )
        max_tokens = max_model_len - n_prompt
    elif max_tokens < 1:
        raise _bad(f"max_tokens must be at least 1, got {max_tokens}.")
    elif n_prompt + max_tokens > max_model_len:
        raise _bad(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {n_prompt + max_tokens} tokens ({n_prompt} in the messages, "
            f"{max_tokens} in the completion). Please reduce the length of the messages or "
            "completion."
        )
    return CompletionRequest(
        chat=chat,
        model=model,
        prompt_ids=prompt_ids,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        ignore_eos=ignore_eos,
        echo_text=echo,
    )


def usage_dict(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": max(0, cached)},
    }


def full_response(
    *,
    chat: bool,
    request_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    usage: dict[str, Any],
) -> bytes:
    """A non-streaming chat.completion or text_completion body."""
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": text,
                "refusal": None,
                "annotations": None,
                "audio": None,
                "function_call": None,
                "tool_calls": [],
                "reasoning_content": None,
            },
            "logprobs": None,
            "finish_reason": finish_reason,
            "stop_reason": None,
        }
        obj = "chat.completion"
    else:
        choice = {
            "index": 0,
            "text": text,
            "logprobs": None,
            "finish_reason": finish_reason,
            "stop_reason": None,
            "prompt_logprobs": None,
        }
        obj = "text_completion"
    return orjson.dumps(
        {
            "id": request_id,
            "object": obj,
            "created": created,
            "model": model,
            "choices": [choice],
            "service_tier": None,
            "system_fingerprint": None,
            "usage": usage,
            "prompt_logprobs": None,
            "kv_transfer_params": None,
        }
    )


class StreamFormatter:
    """Pre-built SSE byte fragments for one streamed request (cheap per-token chunks)."""

    __slots__ = ("_head", "_tail", "chat", "created", "model", "request_id")

    def __init__(self, *, chat: bool, request_id: str, created: int, model: str) -> None:
        self.chat = chat
        self.request_id = request_id
        self.created = created
        self.model = model
        obj = "chat.completion.chunk" if chat else "text_completion"
        self._head = (
            b'data: {"id":'
            + orjson.dumps(request_id)
            + b',"object":"'
            + obj.encode()
            + b'","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"choices":[{"index":0,'
        )

    def role_chunk(self) -> bytes:
        """vLLM's first chat chunk: the assistant role with empty content."""
        return (
            self._head
            + b'"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
        )

    def token_chunk(self, text: str, finish_reason: str | None = None) -> bytes:
        fr = b"null" if finish_reason is None else b'"' + finish_reason.encode() + b'"'
        if self.chat:
            tail = b',"stop_reason":null' if finish_reason is not None else b""
            return (
                self._head
                + b'"delta":{"content":'
                + orjson.dumps(text)
                + b'},"logprobs":null,"finish_reason":'
                + fr
                + tail
                + b"}]}\n\n"
            )
        return (
            self._head
            + b'"text":'
            + orjson.dumps(text)
            + b',"logprobs":null,"finish_reason":'
            + fr
            + b',"stop_reason":null}]}\n\n'
        )

    def token_frame(self, *, chunked: bool) -> tuple[bytes, int]:
        """A ``%``-template for a non-final token event, ready for the wire.

        ``template % (size, json_text)`` (chunked) or ``template % json_text`` gives the
        bytes of ``token_chunk(text)`` where ``json_text`` is ``orjson.dumps(text)`` and
        ``size = fixed + len(json_text)`` is its length, framed as one HTTP/1.1 chunk.
        """
        before, after = self.token_chunk("").split(b'""', 1)
        fixed = len(before) + len(after)
        before = before.replace(b"%", b"%%")
        after = after.replace(b"%", b"%%")
        if chunked:
            return b"%x\r\n" + before + b"%b" + after + b"\r\n", fixed
        return before + b"%b" + after, fixed

    def usage_chunk(self, usage: dict[str, Any]) -> bytes:
        return (
            b"data: "
            + orjson.dumps(
                {
                    "id": self.request_id,
                    "object": "chat.completion.chunk" if self.chat else "text_completion",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage,
                }
            )
            + b"\n\n"
        )

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"
