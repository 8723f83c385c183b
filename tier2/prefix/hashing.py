"""Chained block hashes of a prompt's text, the keys of the prefix index (pure).

Why text and not tokens: tier2 has no tokenizer. The engine caches full KV blocks of
token ids hashed in a chain; we approximate that with fixed-size blocks of the prompt's
UTF-8 text (about 4 characters per token), hashed in a chain with xxh64:

    h_0 = seed(model, adapter, cache_salt)
    h_i = xxh64(block_i, seed=h_{i-1})

so a block's hash stands for the whole prefix up to it, and two prompts match exactly as
far as their text agrees, block by block. The trailing partial block is not hashed
(the engine caches full blocks only) but is kept in the chain, so text generated later
can continue it: vLLM keeps the answer's blocks cached too, and turn N+1 of a chat is
turn N's prompt followed by its answer.

Canonical text. A completion is its prompt. A chat is each message's role and content
joined with separators that cannot occur in text (`messages`), so that the next turn's
text starts with this turn's text followed by the answer as an assistant message; or the
JSON of the message list as GIE v1.5 hashes it (`json`; its closing `]` means an
answer cannot be appended). Hashing stops after `max_blocks` blocks (bounded cost); a
truncated chain cannot be extended.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import xxhash

from common import jsonutil

CHARS_PER_TOKEN: Final = 4
"""The approximation everything here rests on (GIE uses the same constant)."""

ChainKind = Literal["chat", "completion", "opaque"]
"""How an answer continues the chain: as an assistant message, as raw text, or not at all."""

_MSG_START: Final = "\x1e"
_MSG_BODY: Final = "\x1f"


@dataclass(frozen=True, slots=True)
class PrefixChain:
    hashes: tuple[int, ...]
    """One chained hash per full block, in prompt order."""
    tail: bytes
    """Text after the last full block, not hashed yet."""
    seed: int
    block_chars: int
    max_blocks: int
    kind: ChainKind
    truncated: bool = False
    """True when hashing stopped at max_blocks; such a chain is not extended."""

    @property
    def extendable(self) -> bool:
        return self.kind != "opaque" and not self.truncated

    @property
    def last(self) -> int:
        return self.hashes[-1] if self.hashes else self.seed


def seed_hash(model: str, adapter: str | None = None, salt: str | None = None) -> int:
    """The chain's seed: caches of different models, adapters or salts never match."""
    return xxhash.xxh64_intdigest(f"{model}\x00{adapter or ''}\x00{salt or ''}".encode())


def _hash_blocks(data: bytes, prev: int, block: int, limit: int) -> tuple[list[int], int]:
    """Hashes of up to `limit` full blocks of `data`; and the bytes they consumed."""
    n = min(len(data) // block, limit)
    view = memoryview(data)
    out = []
    digest = xxhash.xxh64_intdigest
    for start in range(0, n * block, block):
        prev = digest(view[start : start + block], prev)
        out.append(prev)
    return out, n * block


def chain(
    text: str | bytes,
    seed: int,
    *,
    block_chars: int,
    max_blocks: int,
    kind: ChainKind = "completion",
) -> PrefixChain:
    """Hash `text` into a chain of full blocks."""
    data = text.encode() if isinstance(text, str) else text
    hashes, used = _hash_blocks(data, seed, block_chars, max_blocks)
    truncated = len(hashes) == max_blocks and len(data) - used >= block_chars
    return PrefixChain(
        tuple(hashes),
        b"" if truncated else data[used:],
        seed,
        block_chars,
        max_blocks,
        kind,
        truncated,
    )


def extend(base: PrefixChain, text: str) -> PrefixChain:
    """The chain continued by generated `text` (wrapped as an assistant message for a
    chat); `base` itself when it cannot be extended."""
    if not base.extendable or not text:
        return base
    more = (answer_text(text) if base.kind == "chat" else text).encode()
    data = base.tail + more
    room = base.max_blocks - len(base.hashes)
    hashes, used = _hash_blocks(data, base.last, base.block_chars, room)
    truncated = len(hashes) == room and len(data) - used >= base.block_chars
    return replace(
        base,
        hashes=base.hashes + tuple(hashes),
        tail=b"" if truncated else data[used:],
        truncated=truncated,
    )


# --- canonical text -----------------------------------------------------------------


def _part_text(part: Any) -> str:
    if isinstance(part, Mapping) and isinstance(part.get("text"), str):
        return str(part["text"])
    if isinstance(part, str):
        return part
    # images, audio, files: their JSON identifies them (URL or data) well enough
    return jsonutil.dumps(part, sort_keys=True).decode()


def content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(p) for p in content)
    return _part_text(content)


def message_text(message: Any) -> str:
    if not isinstance(message, Mapping):
        return _MSG_START + _part_text(message)
    text = f"{_MSG_START}{message.get('role', '')}{_MSG_BODY}{content_text(message.get('content'))}"
    tool_calls = message.get("tool_calls")
    if tool_calls:
        text += jsonutil.dumps(tool_calls, sort_keys=True).decode()
    return text


def answer_text(text: str) -> str:
    """What an assistant answer adds to a chat's canonical text."""
    return f"{_MSG_START}assistant{_MSG_BODY}{text}"


def chat_text(messages: Sequence[Any], fmt: Literal["messages", "json"] = "messages") -> bytes:
    if fmt == "json":
        return jsonutil.dumps(list(messages))
    return "".join(message_text(m) for m in messages).encode()


def prompt_text(prompt: Any) -> bytes:
    """A completions `prompt`: text, a list of texts (the first one is hashed, as the
    engine caches each separately), token ids, or a list of token-id lists."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt.encode()
    if isinstance(prompt, list):
        return ",".join(str(t) for t in prompt).encode()
    return b""


def estimate_tokens(text_bytes: int) -> int:
    return math.ceil(text_bytes / CHARS_PER_TOKEN)
