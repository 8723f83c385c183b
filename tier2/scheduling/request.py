"""OpenAI request body → PickRequest: model, adapter, sizes and prompt hashes (pure).

The one place a request is hashed, so the cost is paid once per request and bounded
by the profile's `max_blocks`. The seed of the hash chain covers the pool's model, the
adapter and the body's `cache_salt` (vLLM's per-tenant cache isolation), so requests
that cannot share KV blocks never share index entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from common.config import Pool
from common.config.scheduling import PrefixIndexParams
from common.errors import BadRequest, NotFound
from tier2.prefix import hashing
from tier2.scheduling.types import PickRequest, Priority

Kind = Literal["chat", "completions"]
_MAX_SEEDS = 4096


class RequestBuilder:
    def __init__(self, pool: Pool, prefix: PrefixIndexParams | None, block_chars: int) -> None:
        self.pool = pool
        self.prefix = prefix
        """None: the profile keeps no prefix index, so nothing is hashed."""
        self.block_chars = block_chars
        self._seeds: dict[tuple[str | None, str | None], int] = {}

    def build(
        self,
        body: Mapping[str, Any],
        *,
        request_id: str,
        kind: Kind | None = None,
        priority: Priority = Priority.STANDARD,
        session: str | None = None,
    ) -> PickRequest:
        """Raises BadRequest for a body without a usable `model`/`messages`, NotFound for a
        model that is neither the pool's model nor one of its adapters."""
        spec = self.pool.spec
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("`model` is required and must be a string", param="model")
        adapter = model if model in spec.adapters else None
        if adapter is None and model != spec.model:
            raise NotFound(f"model {model!r} is not served by pool {self.pool.name!r}")
        if kind is None:
            kind = "chat" if "messages" in body else "completions"
        p = self.prefix
        chain_kind: hashing.ChainKind
        if kind == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list):
                raise BadRequest("`messages` must be a list", param="messages")
            fmt = p.prompt_format if p is not None else "messages"
            text = hashing.chat_text(messages, fmt)
            chain_kind = "chat" if fmt == "messages" else "opaque"
            tokens = hashing.estimate_tokens(len(text))
        else:
            prompt = body.get("prompt")
            text = hashing.prompt_text(prompt)
            chain_kind = "completion"
            tokens = _prompt_token_ids(prompt) or hashing.estimate_tokens(len(text))
        chain: hashing.PrefixChain | None = None
        if p is not None:
            salt = body.get("cache_salt")
            chain = hashing.chain(
                text,
                self._seed(adapter, salt if isinstance(salt, str) else None),
                block_chars=self.block_chars,
                max_blocks=p.max_blocks,
                kind=chain_kind,
            )
        return PickRequest(
            request_id=request_id,
            model=model,
            adapter=adapter,
            prompt_tokens=tokens,
            max_output_tokens=_max_tokens(body),
            block_hashes=chain.hashes if chain is not None else (),
            priority=priority,
            session=session,
            stream=body.get("stream") is True,
            block_chars=self.block_chars,
            chain=chain,
        )

    def _seed(self, adapter: str | None, salt: str | None) -> int:
        key = (adapter, salt)
        seed = self._seeds.get(key)
        if seed is None:
            if len(self._seeds) >= _MAX_SEEDS:  # salts are per tenant: bound the cache
                self._seeds.clear()
            seed = self._seeds[key] = hashing.seed_hash(self.pool.spec.model, adapter, salt)
        return seed


def _max_tokens(body: Mapping[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        v = body.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return 0


def _prompt_token_ids(prompt: Any) -> int:
    """Token count of a token-id prompt (0 for text)."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], list):
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    return 0
