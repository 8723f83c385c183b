"""Scheduling contracts: what a pick sees and returns (pure; STYLE.md §2.4).

A `PickRequest` is built once per request by tier2's HTTP layer (and by the benchmark
from a simulated request); plugins never see aiohttp objects. `Candidate` couples an
endpoint's scraped state with the ledger's view of what this replica dispatched to it,
captured in the same event-loop turn as the pick.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from tier2.datalayer.types import EndpointState
from tier2.prefix.hashing import PrefixChain


class Priority(enum.IntEnum):
    SHEDDABLE = 0
    STANDARD = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True)
class PickRequest:
    request_id: str
    model: str
    adapter: str | None
    """LoRA adapter requested (None: the base model)."""
    prompt_tokens: int
    """Prompt length, estimated (~4 chars/token) when no tokenizer is at hand."""
    max_output_tokens: int
    block_hashes: tuple[int, ...]
    """Chained hashes of the prompt's blocks (tier2.prefix), seeded with model+adapter."""
    priority: Priority = Priority.STANDARD
    session: str | None = None
    stream: bool = True
    """Streamed answer: its first byte is a TTFT the ledger can learn the prefill rate from."""
    block_chars: int = 64
    """Characters per hashed block (about block_chars / 4 tokens)."""
    chain: PrefixChain | None = None
    """The hash chain behind `block_hashes`, kept so the answer can extend it."""


@dataclass(frozen=True, slots=True)
class LedgerView:
    """What this replica dispatched to an endpoint that scrapes may not show yet."""

    prefill_tokens: int = 0
    """Uncached prompt tokens of requests sent and not yet at first byte."""
    waiting: int = 0
    """Requests sent and not yet at first byte."""
    running: int = 0
    """Requests past first byte and not finished."""
    kv_tokens: int = 0
    """Estimated KV tokens held by requests in flight (prompt + expected output)."""
    foreign: float = 0.0
    """Estimated requests on the pod that this replica did not send (other replicas,
    direct traffic): EWMA of scraped waiting+running minus the ledger at scrape time."""
    prefill_rate: float = 0.0
    """Prefill throughput of the pod in tokens/s, learned online from observed TTFTs;
    until then the pool's mean learned rate, or the ledger's default (0: no ledger)."""
    kv_new_tokens: int = 0
    """KV tokens the requests in flight add beyond what was cached when they were sent
    (uncached prompt + expected output): shared prefix blocks are counted once."""
    dispatched_since_scrape: int = 0
    """Requests sent after the endpoint's last scrape and still in flight: load the
    scraped metrics cannot show yet."""
    kv_new_since_scrape: int = 0
    """`kv_new_tokens` of those requests."""
    output_tokens: int = 0
    """Expected output tokens of the requests in flight: KV their answers will fill."""


@dataclass(frozen=True, slots=True)
class Candidate:
    state: EndpointState
    ledger: LedgerView = field(default_factory=LedgerView)
    prefix_blocks: int = 0
    """Leading blocks of the request's prompt predicted cached on this endpoint."""
    prefix_precision: float = 1.0
    """Measured precision of the prefix index on this endpoint (1: never wrong so far)."""

    @property
    def id(self) -> str:
        return self.state.id


@dataclass(frozen=True, slots=True)
class PickResult:
    ranked: tuple[str, ...]
    """Endpoint ids, best first; the proxy tries them in order on connect failure."""
    scores: dict[str, float]
    saturated: bool = False
    """True when every candidate was saturated (the filter kept all of them)."""
    reason: str = ""
    """How the winner was chosen (`max-score`, `weighted-random`, `warm`, `warm-valve`,
    `ring`, `ring-valve`, `least-cost`), for metrics."""
    predicted_ttft_s: dict[str, float] | None = None
    """Predicted TTFT per candidate, from pickers that compute one."""


class Filter(Protocol):
    def filter(self, req: PickRequest, cands: list[Candidate], now: float) -> list[Candidate]: ...


class Scorer(Protocol):
    def score(self, req: PickRequest, cands: list[Candidate], now: float) -> dict[str, float]:
        """A score in [0, 1] per candidate id (clamped by the profile)."""
        ...
