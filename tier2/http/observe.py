"""What tier2 learns from a pod's answer while passing it through untouched (pure).

Two facts feed the picker when a request ends: `usage.prompt_tokens_details.
cached_tokens` (the pod's own count of prompt tokens it found cached, the ground truth
for the prefix index) and the generated text (vLLM caches the answer's blocks too, so
the next turn of a chat can hit them). The text is kept only up to a bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common import jsonutil
from common.sse import SSEDecoder


@dataclass(frozen=True, slots=True)
class Outcome:
    cached_tokens: int | None
    """None when the pod did not report it."""
    text: str


def _cached_tokens(usage: Any) -> int | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        return None
    cached = details.get("cached_tokens")
    return cached if isinstance(cached, int) and cached >= 0 else None


def _choice_text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    for holder in (choice.get("message"), choice.get("delta")):
        if isinstance(holder, dict):
            content = holder.get("content")
            return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _first_choice(data: Any) -> Any:
    choices = data.get("choices") if isinstance(data, dict) else None
    return choices[0] if isinstance(choices, list) and choices else None


def unary_outcome(body: bytes, max_chars: int) -> Outcome:
    """From a whole (non-streamed) completion body; garbage gives an empty outcome."""
    try:
        data = jsonutil.loads(body)
    except ValueError:
        return Outcome(None, "")
    if not isinstance(data, dict):
        return Outcome(None, "")
    return Outcome(_cached_tokens(data.get("usage")), _choice_text(_first_choice(data))[:max_chars])


class StreamObserver:
    """Fed the SSE bytes as they pass; `outcome()` once the stream has ended."""

    def __init__(self, max_chars: int) -> None:
        self._decoder = SSEDecoder()
        self._pieces: list[str] = []
        self._chars = 0
        self._max_chars = max_chars
        self._cached: int | None = None

    def feed(self, chunk: bytes) -> None:
        for event in self._decoder.feed(chunk):
            self._event(event.data)

    def outcome(self) -> Outcome:
        for event in self._decoder.flush():
            self._event(event.data)
        return Outcome(self._cached, "".join(self._pieces)[: self._max_chars])

    def _event(self, data: bytes) -> None:
        if not data.startswith(b"{"):
            return  # [DONE], comments, keep-alives
        try:
            parsed = jsonutil.loads(data)
        except ValueError:
            return
        if not isinstance(parsed, dict):
            return
        usage = parsed.get("usage")
        if usage:
            cached = _cached_tokens(usage)
            if cached is not None:
                self._cached = cached
        if self._chars < self._max_chars:
            text = _choice_text(_first_choice(parsed))
            if text:
                self._pieces.append(text)
                self._chars += len(text)
