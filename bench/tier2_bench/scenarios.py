"""The benchmark's scenarios (a)–(g) as data: workload, load ladder, windows, targets.

Capacity. Every scenario runs the ``32b-h100-tp2`` profile (a 32B model on two H100s,
307k KV tokens per pod, 2,048-token step budget) on 8 pods: the only shipped profile
whose context length holds scenario (a)'s 7,200-token prompts plus 1,000-token answers,
and the 8-pod Qwen3-32B setup of llm-d's b2b benchmark, whose published throughput
(8,730 output tok/s) the profile reproduces (gie-default delivers about 8,300 at (a)'s
knee). The ladders are placed around the knees: about 8 requests/s for (a), 4 for (b)
(6,000 uncached tokens each), 6 chat starts/s for (c) and (e), 60 requests/s for (d).
Chat conversations live about 4 minutes (7.5 turns of a 30 s answer and a 5 s pause),
so (c) and (e) warm up for 400 s to reach a steady number of open conversations before
measuring.

Every policy sees metrics scraped every 50 ms (GIE's default) except in (f), which runs
at (a)'s knee when (a) ran in the same invocation (else at 8 requests/s) and varies
the interval for all of them.

Windows are virtual seconds (see :mod:`bench.tier2_bench.harness`); ``scale`` stretches
them, ``quick`` shrinks them to a quarter and keeps two ladder points, two scrape
intervals and two endpoint counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

from bench.tier2_bench.harness import Window
from bench.tier2_bench.prompts import TextPool
from bench.tier2_bench.workloads import (
    BurstSpec,
    BurstWorkload,
    ChatSpec,
    ChatWorkload,
    MixedWorkload,
    SharedPrefixCorpus,
    SharedPrefixSpec,
    SharedPrefixWorkload,
    ShortSpec,
    ShortWorkload,
    Workload,
)

__all__ = ["SCENARIOS", "Corpora", "Scenario", "scenario_list"]

PROFILE = "32b-h100-tp2"
NUM_PODS = 8
SCRAPE_INTERVAL_S = 0.05
"""GIE's default refresh interval; every policy sees metrics this stale."""


class Corpora:
    """Prompt material shared by all runs of one process (built on first use)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @cached_property
    def pool(self) -> TextPool:
        return TextPool(seed=self.seed)

    @cached_property
    def high_cache(self) -> SharedPrefixCorpus:
        return SharedPrefixCorpus(SharedPrefixSpec(), self.pool, self.seed)

    @cached_property
    def low_cache(self) -> SharedPrefixCorpus:
        spec = SharedPrefixSpec(system_tokens=1200, question_tokens=6000)
        return SharedPrefixCorpus(spec, self.pool, self.seed)

    @cached_property
    def bursts(self) -> BurstWorkload:
        return BurstWorkload(BurstSpec(), self.pool, self.seed)

    def workload(self, key: str, rate: float) -> Workload:
        """Scenario ``key``'s workload at ladder value ``rate``."""
        if key in ("a", "f"):
            return SharedPrefixWorkload(self.high_cache, rate, self.seed)
        if key == "b":
            return SharedPrefixWorkload(self.low_cache, rate, self.seed)
        if key == "c":
            return ChatWorkload(ChatSpec(), rate, self.pool, self.seed)
        if key == "d":
            return ShortWorkload(ShortSpec(), rate, self.pool, self.seed)
        if key == "e":
            chat = ChatWorkload(ChatSpec(), rate, self.pool, self.seed)
            return MixedWorkload((chat, self.bursts))
        raise KeyError(key)


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    kind: str
    """``ladder`` (load ladder), ``scrape`` (scrape intervals) or ``pick`` (pick latency)."""
    rates: tuple[float, ...] = ()
    rate_unit: str = "req/s"
    window: Window = Window(300.0, 400.0, 60.0)
    scrape_intervals: tuple[float, ...] = (SCRAPE_INTERVAL_S,)
    endpoints: tuple[int, ...] = ()
    target: str = ""
    """``better`` (≥20% lower TTFT p90 at the knee), ``par`` (within 5%), or empty."""
    gap_target: bool = False
    """Whether `strata` must close half the gie-default → oracle gap at the knee."""
    quick_rates: tuple[float, ...] = field(default=())

    def sized(self, *, scale: float, quick: bool) -> Scenario:
        w = self.window
        factor = scale * (0.25 if quick else 1.0)
        window = Window(w.warmup * factor, w.measure * factor, max(w.tail * factor, 5.0))
        rates = (self.quick_rates or self.rates[-2:]) if quick else self.rates
        intervals = self.scrape_intervals[::3] if quick else self.scrape_intervals
        endpoints = self.endpoints[::2] if quick else self.endpoints
        return replace(
            self, window=window, rates=rates, scrape_intervals=intervals, endpoints=endpoints
        )


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            "a",
            "b2b shared prefix: 150 groups x 5 users, 6000 system + 1200 question, 1000 out",
            "ladder",
            rates=(4.0, 6.0, 7.0, 8.0, 9.0),
            target="better",
            gap_target=True,
            quick_rates=(7.0, 8.0),
        ),
        Scenario(
            "b",
            "low-cache shared prefix: 1200 system + 6000 question, 1000 out",
            "ladder",
            rates=(2.0, 3.0, 4.0, 5.0),
            target="par",
            quick_rates=(3.0, 4.0),
        ),
        Scenario(
            "c",
            "multi-turn chat: shared 1000-token system, 5-10 turns, 5 s think time",
            "ladder",
            rates=(4.0, 5.0, 6.0, 7.0),
            rate_unit="conversations/s",
            window=Window(400.0, 240.0, 60.0),
            target="better",
            gap_target=True,
            quick_rates=(5.0, 6.0),
        ),
        Scenario(
            "d",
            "short independent prompts (50-600 tokens, no shared prefix)",
            "ladder",
            rates=(45.0, 60.0, 70.0),
            window=Window(60.0, 150.0, 30.0),
            target="par",
            quick_rates=(45.0, 60.0),
        ),
        Scenario(
            "e",
            "bursts of 32-128 same-prefix requests (2000-token documents) on top of (c)",
            "ladder",
            rates=(4.0, 5.0, 6.0),
            rate_unit="conversations/s",
            window=Window(400.0, 240.0, 60.0),
            target="better",
            quick_rates=(4.0, 5.0),
        ),
        Scenario(
            "f",
            "(a) at a fixed rate, metrics scraped every 50 ms, 200 ms, 1 s, 5 s",
            "scrape",
            rates=(8.0,),
            scrape_intervals=(0.05, 0.2, 1.0, 5.0),
        ),
        Scenario(
            "g",
            "pick latency, b2b prompts, warmed index, requests in flight",
            "pick",
            endpoints=(16, 64, 256, 1024),
        ),
    )
}


def scenario_list(keys: str) -> list[Scenario]:
    """Scenarios named by ``keys`` (``"abc"``, ``"a,c"`` or ``"all"``), in order."""
    if keys in ("", "all"):
        return list(SCENARIOS.values())
    wanted = [k for k in keys.replace(",", "").lower()]
    unknown = [k for k in wanted if k not in SCENARIOS]
    if unknown:
        raise KeyError(f"unknown scenario(s) {', '.join(unknown)}; known: {''.join(SCENARIOS)}")
    return [SCENARIOS[k] for k in SCENARIOS if k in wanted]
