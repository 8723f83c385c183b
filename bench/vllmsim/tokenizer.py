"""A deterministic, dependency-free approximate tokenizer and chat template.

Why it exists: the simulator must count tokens and hash prompt blocks the way a real
engine would, without shipping a real vocabulary. Counting needs to be about right
(roughly four characters per token, like BPE on English text); hashing needs to be
exact and stable, so that two requests with the same text produce the same token ids
and therefore the same prefix-cache block hashes.

Design:

* Special tokens (the chat-template markers) are atomic ids below ``FIRST_ORDINARY_ID``.
* The text between special tokens is pre-split like GPT-style tokenizers: a newline is
  its own piece, a word keeps its leading spaces (``" hello"``); a word of up to six
  characters is one token, a longer one is cut into chunks of four characters. Each chunk maps to an id with CRC-32, so the
  mapping is stable across processes (no ``PYTHONHASHSEED`` dependence).
* Because a newline and a special token always end a piece, tokenizing
  ``header + "\\n" + answer`` gives ``tokens(header + "\\n") + tokens(answer)``. The chat
  template ends the generation prompt with ``"<|im_start|>assistant\\n"``, so turn N+1 of
  a conversation starts with exactly turn N's prompt tokens followed by its answer's
  tokens, as with a real chat template.
* Generated ("pseudo") text is made of short words with a leading space, each exactly
  one token, so the engine can pick output token ids and the server can render text
  whose tokenization is those same ids.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

__all__ = [
    "FIRST_ORDINARY_ID",
    "IM_END",
    "IM_START",
    "VOCAB_SIZE",
    "ChatFormatError",
    "content_text",
    "decode_pseudo",
    "encode",
    "encode_chat",
    "encode_pieces",
    "pseudo_output_ids",
    "pseudo_piece",
    "render_chat",
]

VOCAB_SIZE = 128_000
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
_SPECIAL_IDS: dict[str, int] = {IM_START: 1, IM_END: 2}
FIRST_ORDINARY_ID = 16
_CHUNK = 4
_WHOLE_WORD = 6

_SPECIAL_RE = re.compile("(" + "|".join(re.escape(s) for s in _SPECIAL_IDS) + ")")
_PIECE_RE = re.compile(r"\n|[^\S\n]*\S+|[^\S\n]+")


class ChatFormatError(ValueError):
    """The messages cannot be rendered (bad role or content shape)."""


def _piece_id(piece: str) -> int:
    span = VOCAB_SIZE - FIRST_ORDINARY_ID
    return FIRST_ORDINARY_ID + zlib.crc32(piece.encode("utf-8")) % span


@lru_cache(maxsize=1 << 16)
def _word_ids(word: str) -> tuple[tuple[int, str], ...]:
    if len(word) <= _WHOLE_WORD:
        return ((_piece_id(word), word),)
    return tuple(
        (_piece_id(word[i : i + _CHUNK]), word[i : i + _CHUNK]) for i in range(0, len(word), _CHUNK)
    )


def encode_pieces(text: str) -> list[tuple[int, str]]:
    """Tokenize ``text`` into ``(token_id, piece_text)`` pairs; pieces concatenate to ``text``."""
    out: list[tuple[int, str]] = []
    for part in _SPECIAL_RE.split(text):
        if not part:
            continue
        special = _SPECIAL_IDS.get(part)
        if special is not None:
            out.append((special, part))
            continue
        for word in _PIECE_RE.findall(part):
            out.extend(_word_ids(word))
    return out


def encode(text: str) -> list[int]:
    """Token ids of ``text``."""
    return [tid for tid, _ in encode_pieces(text)]


def content_text(content: Any) -> str:
    """The text of an OpenAI message content (a string or a list of text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            else:
                raise ChatFormatError("content parts must be objects with a 'text' field")
        return "".join(parts)
    raise ChatFormatError("message content must be a string or a list of content parts")


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def render_chat(messages: Iterable[Any], *, add_generation_prompt: bool = True) -> str:
    """Render OpenAI-style chat messages with a fixed ChatML-like template.

    Each message becomes ``<|im_start|>{role}\\n{content}<|im_end|>\\n``; the generation
    prompt ``<|im_start|>assistant\\n`` follows. Messages are kept in order, which is what
    makes multi-turn prompts share their prefix with earlier turns.
    """
    chunks: list[str] = []
    for msg in messages:
        if not isinstance(msg, Mapping):
            raise ChatFormatError("each message must be an object")
        role = msg.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise ChatFormatError(f"unsupported message role: {role!r}")
        chunks.append(f"{IM_START}{role}\n{content_text(msg.get('content'))}{IM_END}\n")
    if add_generation_prompt:
        chunks.append(f"{IM_START}assistant\n")
    return "".join(chunks)


def encode_chat(messages: Iterable[Any]) -> list[int]:
    """Token ids of ``messages`` rendered with the chat template and a generation prompt."""
    return encode(render_chat(messages))


# --- pseudo text -------------------------------------------------------------------

_WORDS = (
    "the of and to a in is it you that he was for on are as with his they I at be this "
    "have from or one had by but not what all were we when your can said there use an "
    "each which she do how if will up other about out many then them these so some her "
    "would make like him into time has look two more go see way could no my than been "
    "who its now find long down day did get come made may part new sub map cat dog sun "
    "red big old end let put set try ask own men run few far low top yes yet sky sea"
).split()


def _build_pseudo_vocab() -> tuple[dict[int, str], tuple[int, ...]]:
    by_id: dict[int, str] = {}
    for word in _WORDS:
        piece = " " + word
        if len(piece) > _CHUNK:
            continue
        tid = _piece_id(piece)
        if tid in by_id:  # keep decoding unambiguous
            continue
        by_id[tid] = piece
    return by_id, tuple(by_id)


_PSEUDO_TEXT, _PSEUDO_IDS = _build_pseudo_vocab()
_TABLE_SIZE = 1 << 16
_PSEUDO_TABLE: list[int] = random.Random(0x5EED).choices(_PSEUDO_IDS, k=_TABLE_SIZE)


def pseudo_output_ids(offset: int, n: int) -> list[int]:
    """``n`` pseudo-text token ids starting at ``offset`` in a fixed pseudo-random stream."""
    start = offset % _TABLE_SIZE
    if start + n <= _TABLE_SIZE:
        return _PSEUDO_TABLE[start : start + n]
    out: list[int] = []
    while len(out) < n:
        take = min(n - len(out), _TABLE_SIZE - start)
        out.extend(_PSEUDO_TABLE[start : start + take])
        start = 0
    return out


def pseudo_piece(token_id: int) -> str:
    """Text of one pseudo-text token id (``""`` for ids that are not pseudo words)."""
    return _PSEUDO_TEXT.get(token_id, "")


def decode_pseudo(token_ids: Sequence[int]) -> str:
    """Text of a run of pseudo-text token ids; ``encode`` of the result gives them back."""
    return "".join(_PSEUDO_TEXT.get(t, "") for t in token_ids)
