"""Seeded request generators for the tier2 benchmark scenarios (pure; no clock, no I/O).

A workload is two calls: :meth:`Workload.initial` lists every request whose arrival does
not depend on the system (Poisson arrivals, bursts, first turns), and
:meth:`Workload.follow_up` turns a finished request into the next one (the next turn of a
chat, after a think time). Everything a request carries (text, lengths, think times) is
drawn from RNGs keyed by the seed and the request's own identity, never from a shared
stream consumed in completion order, so every routing policy faces the same requests;
only follow-up arrival times depend on how fast earlier turns were served, as with real
users.

Each :class:`~bench.vllmsim.des.SimRequest` carries a :class:`Payload`: the chat messages
(what tier2 would receive and hash) and its token ids (what the engine caches), built
together by :mod:`bench.tier2_bench.prompts`. Answers have a fixed, drawn length
(``ignore_eos``), so their length does not depend on the pod either.

Vocabulary (inference-perf ``shared_prefix``): ``groups`` system prompts, each with
``users`` fixed questions; a request is one of those ``groups × users`` prompts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bench.tier2_bench.prompts import (
    ASSISTANT_PROMPT_IDS,
    Message,
    TextPool,
    TokenizedMessage,
    message,
    prompt_ids,
)
from bench.vllmsim import tokenizer
from bench.vllmsim.des import RequestRecord, SimRequest

__all__ = [
    "BurstSpec",
    "BurstWorkload",
    "ChatSpec",
    "ChatWorkload",
    "Conversation",
    "MixedWorkload",
    "Payload",
    "SharedPrefixCorpus",
    "SharedPrefixSpec",
    "SharedPrefixWorkload",
    "ShortSpec",
    "ShortWorkload",
    "Workload",
]


@dataclass(frozen=True, slots=True)
class Payload:
    """What a simulated request stands for: the chat as tier2 would receive it."""

    messages: tuple[Message, ...]
    max_tokens: int
    conversation: Conversation | None = None


class Workload(Protocol):
    def initial(self, until: float) -> list[SimRequest]:
        """Requests arriving in ``[0, until)`` that do not wait for earlier answers."""
        ...

    def follow_up(self, rec: RequestRecord) -> SimRequest | None:
        """The request that ``rec``'s completion triggers, if any."""
        ...


def _poisson(rng: random.Random, rate: float, until: float) -> list[float]:
    out: list[float] = []
    if rate <= 0:
        return out
    t = rng.expovariate(rate)
    while t < until:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def _request(rid: str, parts: Sequence[TokenizedMessage], max_tokens: int, at: float) -> SimRequest:
    payload = Payload(tuple(p.message for p in parts), max_tokens)
    return SimRequest(rid, prompt_ids(parts), max_tokens, at, ignore_eos=True, payload=payload)


def _lognormal(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, round(rng.lognormvariate(math.log(median), sigma))))


# --- (a), (b), (f): shared-prefix "b2b" ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedPrefixSpec:
    groups: int = 150
    users: int = 5
    system_tokens: int = 6000
    question_tokens: int = 1200
    output_tokens: int = 1000


class SharedPrefixCorpus:
    """The ``groups × users`` fixed prompts of a shared-prefix workload (built once)."""

    def __init__(self, spec: SharedPrefixSpec, pool: TextPool, seed: int = 0) -> None:
        rng = random.Random(f"shared-prefix:{seed}")
        self.spec = spec
        self.systems = [
            message("system", *pool.passage(rng, spec.system_tokens, f"org{g}"))
            for g in range(spec.groups)
        ]
        self.questions = [
            [
                message("user", *pool.passage(rng, spec.question_tokens, f"g{g}u{u}"))
                for u in range(spec.users)
            ]
            for g in range(spec.groups)
        ]


@dataclass(frozen=True, slots=True)
class SharedPrefixWorkload:
    corpus: SharedPrefixCorpus
    rate: float
    """Poisson requests per second."""
    seed: int = 0

    def initial(self, until: float) -> list[SimRequest]:
        rng = random.Random(f"shared-prefix-arrivals:{self.seed}:{self.rate}")
        spec = self.corpus.spec
        out = []
        for n, t in enumerate(_poisson(rng, self.rate, until)):
            g, u = rng.randrange(spec.groups), rng.randrange(spec.users)
            parts = (self.corpus.systems[g], self.corpus.questions[g][u])
            out.append(_request(f"a{n}", parts, spec.output_tokens, t))
        return out

    def follow_up(self, rec: RequestRecord) -> SimRequest | None:
        return None


# --- (c): multi-turn chat -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatSpec:
    system_tokens: int = 1000
    """One system prompt shared by every conversation."""
    turns: tuple[int, int] = (5, 10)
    user_tokens: tuple[int, int] = (50, 300)
    answer_median: float = 200.0
    answer_sigma: float = 0.6
    answer_max: int = 800
    think_mean_s: float = 5.0
    """Mean of the exponential pause between an answer and the next question."""


class Conversation:
    """One user's chat: its own RNG (so its content never depends on routing) and history."""

    __slots__ = ("key", "parts", "prompt", "rng", "turn", "turns")

    def __init__(self, key: str, rng: random.Random, turns: int) -> None:
        self.key = key
        self.rng = rng
        self.turns = turns
        self.turn = 0
        self.parts: list[TokenizedMessage] = []
        self.prompt: list[int] = []


class ChatWorkload:
    def __init__(
        self, spec: ChatSpec, conversation_rate: float, pool: TextPool, seed: int = 0
    ) -> None:
        self.spec = spec
        self.conversation_rate = conversation_rate
        self.pool = pool
        self.seed = seed
        rng = random.Random(f"chat-system:{seed}")
        self.system = message("system", *pool.passage(rng, spec.system_tokens, "assistant0"))

    @property
    def request_rate(self) -> float:
        """Mean requests per second once conversations overlap in steady state."""
        lo, hi = self.spec.turns
        return self.conversation_rate * (lo + hi) / 2

    def initial(self, until: float) -> list[SimRequest]:
        rng = random.Random(f"chat-arrivals:{self.seed}:{self.conversation_rate}")
        out = []
        for n, t in enumerate(_poisson(rng, self.conversation_rate, until)):
            crng = random.Random(f"chat:{self.seed}:{n}")
            conv = Conversation(f"c{n}", crng, crng.randint(*self.spec.turns))
            conv.parts = [self.system]
            conv.prompt = list(self.system.ids)
            out.append(self._next_turn(conv, t))
        return out

    def follow_up(self, rec: RequestRecord) -> SimRequest | None:
        payload = rec.payload
        conv = payload.conversation if isinstance(payload, Payload) else None
        if conv is None or conv.turn >= conv.turns or rec.output_token_ids is None:
            return None
        answer = rec.output_token_ids
        reply = message("assistant", tokenizer.decode_pseudo(answer), answer)
        conv.parts.append(reply)
        conv.prompt.extend(reply.ids)
        think = conv.rng.expovariate(1.0 / self.spec.think_mean_s)
        return self._next_turn(conv, rec.finish + think)

    def _next_turn(self, conv: Conversation, at: float) -> SimRequest:
        spec = self.spec
        rng = conv.rng
        conv.turn += 1
        user = message(
            "user",
            *self.pool.passage(rng, rng.randint(*spec.user_tokens), f"{conv.key}t{conv.turn}"),
        )
        conv.parts.append(user)
        conv.prompt.extend(user.ids)
        max_tokens = _lognormal(rng, spec.answer_median, spec.answer_sigma, 8, spec.answer_max)
        payload = Payload(tuple(p.message for p in conv.parts), max_tokens, conv)
        ids = conv.prompt + list(ASSISTANT_PROMPT_IDS)
        rid = f"{conv.key}-t{conv.turn}"
        return SimRequest(rid, ids, max_tokens, at, ignore_eos=True, payload=payload)


# --- (d): short independent prompts ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShortSpec:
    prompt_tokens: tuple[int, int] = (50, 600)
    answer_median: float = 150.0
    answer_sigma: float = 0.7
    answer_max: int = 600


@dataclass(frozen=True, slots=True)
class ShortWorkload:
    spec: ShortSpec
    rate: float
    pool: TextPool
    seed: int = 0

    def initial(self, until: float) -> list[SimRequest]:
        rng = random.Random(f"short:{self.seed}:{self.rate}")
        spec = self.spec
        out = []
        for n, t in enumerate(_poisson(rng, self.rate, until)):
            user = message(
                "user", *self.pool.passage(rng, rng.randint(*spec.prompt_tokens), f"d{n}")
            )
            max_tokens = _lognormal(rng, spec.answer_median, spec.answer_sigma, 8, spec.answer_max)
            out.append(_request(f"d{n}", (user,), max_tokens, t))
        return out

    def follow_up(self, rec: RequestRecord) -> SimRequest | None:
        return None


# --- (e): synchronized same-prefix bursts ---------------------------------------------


@dataclass(frozen=True, slots=True)
class BurstSpec:
    mean_interval_s: float = 30.0
    """Mean of the exponential gap between bursts."""
    size: tuple[int, int] = (32, 128)
    documents: int = 6
    """Distinct shared prefixes; a burst uses one, so later bursts may find it warm."""
    document_tokens: int = 2000
    question_tokens: tuple[int, int] = (20, 80)
    answer_tokens: tuple[int, int] = (50, 250)


class BurstWorkload:
    """Bursts of requests arriving at the same instant, all behind one shared document."""

    def __init__(self, spec: BurstSpec, pool: TextPool, seed: int = 0) -> None:
        self.spec = spec
        self.pool = pool
        self.seed = seed
        rng = random.Random(f"burst-docs:{seed}")
        self.documents = [
            message("system", *pool.passage(rng, spec.document_tokens, f"doc{k}"))
            for k in range(spec.documents)
        ]

    def initial(self, until: float) -> list[SimRequest]:
        spec = self.spec
        rng = random.Random(f"bursts:{self.seed}")
        out = []
        for b, t in enumerate(_poisson(rng, 1.0 / spec.mean_interval_s, until)):
            doc = self.documents[rng.randrange(len(self.documents))]
            for k in range(rng.randint(*spec.size)):
                n_q = rng.randint(*spec.question_tokens)
                user = message("user", *self.pool.passage(rng, n_q, f"b{b}q{k}"))
                out.append(_request(f"e{b}-{k}", (doc, user), rng.randint(*spec.answer_tokens), t))
        return out

    def follow_up(self, rec: RequestRecord) -> SimRequest | None:
        return None


@dataclass(frozen=True, slots=True)
class MixedWorkload:
    """Several workloads on one cluster (e.g. bursts on top of chat)."""

    parts: tuple[Workload, ...]

    def initial(self, until: float) -> list[SimRequest]:
        out = [r for w in self.parts for r in w.initial(until)]
        out.sort(key=lambda r: r.arrival)
        return out

    def follow_up(self, rec: RequestRecord) -> SimRequest | None:
        for w in self.parts:
            nxt = w.follow_up(rec)
            if nxt is not None:
                return nxt
        return None
