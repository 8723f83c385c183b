"""Discrete-event simulation: routing hook, scrape staleness, multi-turn workload."""

from __future__ import annotations

from bench.vllmsim.des import (
    ClusterView,
    LeastLoadedRouter,
    MetricsView,
    RequestRecord,
    SimRequest,
    Simulation,
)
from bench.vllmsim.server import SimConfig
from bench.vllmsim.workload import ChatWorkload


def _req(i: int, at: float, n: int = 200, max_tokens: int = 50) -> SimRequest:
    return SimRequest(f"r{i}", [10_000 + i * 1000 + j for j in range(n)], max_tokens, at, True)


class RecordingRouter:
    def __init__(self) -> None:
        self.seen: list[tuple[float, list[MetricsView]]] = []

    def route(self, request: SimRequest, cluster: ClusterView) -> int:
        self.seen.append((cluster.now, [cluster.scrape(i) for i in range(cluster.num_pods)]))
        return int(request.request_id[1:]) % cluster.num_pods


def test_router_hook_and_stale_scrapes() -> None:
    router = RecordingRouter()
    sim = Simulation(SimConfig(), 2, router=router, scrape_interval_s=0.5)
    for i in range(20):
        sim.submit(_req(i, at=i * 0.05))
    records = sim.run()
    assert len(records) == 20
    assert {r.pod for r in records} == {0, 1}
    for now, views in router.seen:
        for v in views:
            assert v.scraped_at <= now
            assert now - v.scraped_at < 0.5 + 1e-9
            assert v.stats.time <= v.scraped_at + 1e-12 or v.stats.time == 0.0
    # staleness is real: some scrape shows fewer running requests than the engine had
    stale = [(now, v) for now, views in router.seen for v in views if v.stats.time < now - 0.1]
    assert stale


def test_scrape_at_reads_history() -> None:
    sim = Simulation(SimConfig(), 1, scrape_interval_s=0.0)
    for i in range(4):
        sim.submit(_req(i, at=0.0))
    sim.run(until=0.5)
    assert sim.scrape(0).stats.num_running == 4
    sim.run()
    assert sim.scrape(0).stats.num_running == 0
    assert sim.scrape(0).stats.generation_tokens == 200


def test_least_loaded_spreads_load() -> None:
    sim = Simulation(SimConfig(), 4, router=LeastLoadedRouter(), scrape_interval_s=0.05)
    for i in range(200):
        sim.submit(_req(i, at=i * 0.02))
    records = sim.run()
    counts = [sum(r.pod == p for r in records) for p in range(4)]
    assert min(counts) > 20


def test_chat_workload_turns_hit_previous_turns() -> None:
    sim = Simulation(SimConfig(), 1, keep_output_ids=True)
    ChatWorkload(session_rate=0.5, duration_s=20, turns=3, seed=2).install(sim)
    finished: list[RequestRecord] = sim.run()
    by_turn: dict[int, list[RequestRecord]] = {}
    for r in finished:
        by_turn.setdefault(int(r.request_id.rsplit("t", 1)[1]), []).append(r)
    assert set(by_turn) == {1, 2, 3}
    for r in by_turn[3]:
        assert r.cached_tokens > r.prompt_tokens * 0.8
