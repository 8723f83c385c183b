"""What the fake 'generated' for the Anthropic, Bedrock and Gemini dialects (pure).

A :class:`Turn` is dialect-neutral: the text chunks, an optional tool call, whether
``max_tokens`` cut it, and the token counts; each dialect's answer module renders it.
Streams are lists of events with the content chunks in one run starting at
:attr:`Stream.head`, so ``stall-after`` and ``stream-exception`` cut them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from bench.fakes.answers import pieces

__all__ = ["TOOL_INPUT", "Stream", "Turn", "make_turn", "tool_fragments"]

TOOL_INPUT: dict[str, object] = {"query": "fake", "count": 1}
"""The input of every scripted tool call."""


@dataclass(frozen=True, slots=True)
class Turn:
    model: str
    pieces: tuple[str, ...]
    tool: str | None
    """The tool to call (``tool-call`` scripted and the request declares tools)."""
    cut: bool
    """``max_tokens`` ended it (no tool call then)."""
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def has_text(self) -> bool:
        """A text block is answered unless the turn is only a tool call."""
        return bool(self.pieces) or self.tool is None


@dataclass(frozen=True, slots=True)
class Stream:
    events: list[bytes]
    head: int
    """Events before the first content chunk; content chunks follow one per event."""
    chunks: int

    def stall_index(self, stall_after: int) -> int:
        return self.head + min(stall_after, self.chunks)

    @property
    def content_end(self) -> int:
        return self.head + self.chunks


def make_turn(
    model: str,
    *,
    chunks: int,
    max_tokens: int | None,
    prompt_tokens: int,
    tool: str | None,
    usage: Mapping[str, int],
) -> Turn:
    """``chunks`` text chunks, cut at ``max_tokens``; token counts overridable by ``usage``."""
    count, cut = chunks, False
    if max_tokens is not None and max_tokens < count:
        count, cut = max_tokens, True
    text = pieces(count)
    inputs = usage.get("prompt_tokens", prompt_tokens)
    outputs = usage.get("completion_tokens", count)
    return Turn(
        model=model,
        pieces=text,
        tool=None if cut else tool,
        cut=cut,
        input_tokens=inputs,
        output_tokens=outputs,
        total_tokens=usage.get("total_tokens", inputs + outputs),
        cached_tokens=usage.get("cached_tokens", 0),
        cache_creation_tokens=usage.get("cache_creation_tokens", 0),
        reasoning_tokens=usage.get("reasoning_tokens", 0),
    )


def tool_fragments() -> list[str]:
    """:data:`TOOL_INPUT` as JSON, cut in three (streamed tool arguments)."""
    raw = orjson.dumps(TOOL_INPUT).decode()
    third = len(raw) // 3
    return [raw[:third], raw[third : 2 * third], raw[2 * third :]]
