"""Prompt text and token ids that agree: what the picker hashes is what the simulator caches.

The picker hashes text (chat messages); the simulated engine caches token ids. Both
come from here: a chat is a list of OpenAI-style messages, and its token ids are those
of the simulator's deterministic tokenizer on the rendered chat template
(:mod:`bench.vllmsim.tokenizer`). Two prompts that share leading messages therefore
share a token prefix in the engine and a text prefix in the picker.

Filler text is made of pseudo-words of 1 to 5 letters; each, with its leading space, is
exactly one token, so a text of ``n`` words is ``n`` tokens at about 4.1 characters per
token, close to BPE on English. To keep workload generation cheap (a run may build
tens of thousands of prompts), words and their ids come from one pre-tokenized
:class:`TextPool`; a passage is a slice of it behind a unique lead word, so passages
never share a prefix unless the workload makes them. Message ids are concatenated
rather than re-tokenized, which equals tokenizing the whole rendered chat because the
template's message boundaries are token boundaries; :func:`chat_ids` is the slow
reference that the tests compare against.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from bench.vllmsim import tokenizer

__all__ = [
    "ASSISTANT_PROMPT_IDS",
    "Message",
    "TextPool",
    "TokenizedMessage",
    "chat_ids",
    "message",
    "prompt_ids",
]

Message = dict[str, str]

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_LENGTH_WEIGHTS = {1: 1.0, 2: 3.0, 3: 4.0, 4: 3.0, 5: 2.0}
"""Mean word length about 3.1 letters: with its space, about 4.1 characters per token."""


class TextPool:
    """A long pre-tokenized run of pseudo-words; passages are slices of it."""

    def __init__(self, num_words: int = 200_000, seed: int = 0) -> None:
        rng = random.Random(f"tier2-bench-text:{seed}")
        vocab: list[str] = []
        weights: list[float] = []
        for n, w in _LENGTH_WEIGHTS.items():
            words = {"".join(rng.choice(_LETTERS) for _ in range(n)) for _ in range(400)}
            vocab.extend(sorted(words))
            weights.extend([w / len(words)] * len(words))
        ids = {w: tokenizer.encode(" " + w) for w in vocab}
        if any(len(v) != 1 for v in ids.values()):  # pragma: no cover - tokenizer invariant
            raise AssertionError("every pool word must be one token")
        self.words: list[str] = rng.choices(vocab, weights=weights, k=num_words)
        self.ids: list[int] = [ids[w][0] for w in self.words]

    def passage(self, rng: random.Random, num_tokens: int, lead: str) -> tuple[str, list[int]]:
        """About ``num_tokens`` tokens of text starting with ``lead`` (no spaces in it), and
        its ids. ``lead`` makes the passage distinct from every other passage."""
        lead_ids = tokenizer.encode(lead)
        n = max(0, min(num_tokens - len(lead_ids), len(self.words)))
        start = rng.randrange(len(self.words) - n + 1)
        words = self.words[start : start + n]
        text = lead + " " + " ".join(words) if words else lead
        return text, lead_ids + self.ids[start : start + n]


@dataclass(frozen=True, slots=True)
class TokenizedMessage:
    """A chat message with the token ids of its rendered template block."""

    message: Message
    ids: tuple[int, ...]

    @property
    def num_tokens(self) -> int:
        return len(self.ids)


def message(role: str, content: str, content_ids: Sequence[int] | None = None) -> TokenizedMessage:
    """``{"role": role, "content": content}`` and the ids of its template block
    ``<|im_start|>role\\n{content}<|im_end|>\\n``; ``content_ids`` skips re-tokenizing."""
    if content_ids is None:
        content_ids = tokenizer.encode(content)
    ids = (*_header_ids(role), *content_ids, *_END_IDS)
    return TokenizedMessage({"role": role, "content": content}, ids)


_END_IDS: tuple[int, ...] = tuple(tokenizer.encode(f"{tokenizer.IM_END}\n"))


@cache
def _header_ids(role: str) -> tuple[int, ...]:
    return tuple(tokenizer.encode(f"{tokenizer.IM_START}{role}\n"))


ASSISTANT_PROMPT_IDS: tuple[int, ...] = _header_ids("assistant")
"""The generation prompt that ends every chat prompt."""


def prompt_ids(parts: Sequence[TokenizedMessage]) -> list[int]:
    """Token ids of the chat made of ``parts`` plus the generation prompt (fast path)."""
    out: list[int] = []
    for p in parts:
        out.extend(p.ids)
    out.extend(ASSISTANT_PROMPT_IDS)
    return out


def chat_ids(messages: Sequence[Message]) -> list[int]:
    """Reference: token ids of ``messages`` rendered with a generation prompt."""
    return tokenizer.encode_chat(messages)
