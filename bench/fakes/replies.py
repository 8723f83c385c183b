"""What an accepted Anthropic, Bedrock, Gemini or Vertex request is answered with (pure).

:func:`provider_reply` turns the :class:`~bench.fakes.calls.Call` and the script into a
:class:`Whole` body or a :class:`Streamed` list of events (with the event index where
``stall-after`` stops); :func:`scripted_error` gives a scripted error status's body and
headers in any dialect's format. The app sends them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from bench.fakes import answers, anthropic_answers, bedrock_answers, eventstream, gemini_answers
from bench.fakes.calls import Call, Dialect, FakeConfig
from bench.fakes.script import Script
from bench.fakes.turns import Stream, make_turn

__all__ = ["Streamed", "Whole", "provider_reply", "scripted_error"]

JSON = "application/json"
_ANTHROPIC_SSE = "text/event-stream; charset=utf-8"
_GOOGLE_SSE = "text/event-stream"


@dataclass(frozen=True, slots=True)
class Whole:
    body: bytes
    content_type: str = JSON


@dataclass(frozen=True, slots=True)
class Streamed:
    events: Sequence[bytes]
    content_type: str
    stall: int | None


def _anthropic_format(dialect: Dialect, call: Call) -> bool:
    """Anthropic's error bodies: its own API, and Anthropic models on Vertex."""
    return dialect == "anthropic" or (
        dialect == "vertex" and call.kind in ("messages", "count_tokens")
    )


def scripted_error(dialect: Dialect, call: Call, status: int) -> tuple[bytes, Mapping[str, str]]:
    """The body (and headers) of a scripted error status in the provider's format."""
    if dialect in ("openai", "azure"):
        return answers.scripted_error_body(dialect, status), {}
    if _anthropic_format(dialect, call):
        return anthropic_answers.scripted_error(status), {}
    if dialect == "bedrock":
        return bedrock_answers.scripted_error(status)
    return gemini_answers.scripted_error(status), {}


def _streamed(stream: Stream, content_type: str, script: Script) -> Streamed:
    stall = None if script.stall_after is None else stream.stall_index(script.stall_after)
    return Streamed(stream.events, content_type, stall)


def provider_reply(
    config: FakeConfig, script: Script, call: Call, n: int, latency_ms: int
) -> Whole | Streamed:
    """The answer to an accepted request; ``n`` makes its ids unique in this fake."""
    if call.kind == "count_tokens":
        return Whole(anthropic_answers.count_tokens_body(call.prompt_tokens))
    turn = make_turn(
        call.model,
        chunks=script.chunks,
        max_tokens=call.max_tokens,
        prompt_tokens=call.prompt_tokens,
        tool=script.tool_call if call.tools else None,
        usage=script.usage,
    )
    exception = script.stream_exception
    latency = max(1, latency_ms)
    if call.kind == "messages" or call.kind == "invoke":
        id_ = f"msg_fake{config.name}{n}"
        if not call.stream:
            return Whole(orjson.dumps(anthropic_answers.message(turn, id_)))
        if config.dialect == "bedrock":
            stream = bedrock_answers.invoke_stream(turn, id_, latency, exception)
            return _streamed(stream, eventstream.CONTENT_TYPE, script)
        return _streamed(anthropic_answers.stream(turn, id_, exception), _ANTHROPIC_SSE, script)
    id_ = f"fake{config.name}{n}"
    if call.kind == "converse":
        if not call.stream:
            return Whole(bedrock_answers.converse_body(turn, id_, latency))
        stream = bedrock_answers.converse_stream(turn, id_, latency, exception)
        return _streamed(stream, eventstream.CONTENT_TYPE, script)
    if not call.stream:
        return Whole(gemini_answers.generate_body(turn, id_))
    stream = gemini_answers.generate_stream(turn, id_, sse=call.sse, exception=exception)
    return _streamed(stream, _GOOGLE_SSE if call.sse else JSON, script)
