"""tier2's production PoolPicker as a DES router: the same classes, fed like the proxy.

The adapter plays tier2's shells around the pure picker:

* datalayer: before each pick, every pod's scrape as the simulator's
  :meth:`~bench.vllmsim.des.ClusterView.scrape` returns it (the snapshot of the last step
  before the pod's last scrape time) becomes an ``EndpointState`` whose metrics carry
  ``scraped_at`` = that scrape time; a state object is rebuilt only when its scrape
  changed, so the picker sees each new scrape once, as from its pollers.
* proxy: the request body is the chat the simulated request stands for
  (:class:`~bench.tier2_bench.workloads.Payload`); ``build_request`` hashes it,
  ``pick`` is timed alone with ``time.perf_counter``, the garbage collector paused
  (its work there would be the simulator's); the first token of the simulated
  stream is ``first_byte``, its completion is ``finish`` with the engine's
  ``cached_tokens`` and the answer's text.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Sequence
from typing import Any

from bench.tier2_bench.routers import BenchRouter
from bench.tier2_bench.workloads import Payload
from bench.vllmsim import tokenizer
from bench.vllmsim.des import ClusterView, MetricsView, RequestRecord, SimRequest
from common.config import Pool
from common.config.pool import PluginConfig, PoolSpec, SchedulerProfile, StaticEndpoints
from tier2.datalayer.types import EndpointMetrics, EndpointState
from tier2.picker import Pick, PoolPicker
from tier2.scheduling.types import PickRequest

__all__ = ["PickerRouter", "endpoint_id", "endpoint_state", "make_pool"]


def endpoint_id(pod: int) -> str:
    """A stable host:port for pod ``pod``."""
    return f"10.{pod // 65536}.{pod // 256 % 256}.{pod % 256}:8000"


def make_pool(
    profile: str,
    num_pods: int,
    model: str,
    scrape_interval_s: float,
    plugins: Sequence[PluginConfig] = (),
) -> Pool:
    """A Pool of ``num_pods`` static endpoints running the named profile (or ``plugins``)."""
    spec = PoolSpec(
        endpoints=StaticEndpoints(addresses=[endpoint_id(i) for i in range(num_pods)]),
        model=model,
        scrape_interval_s=scrape_interval_s,
        scheduler=SchedulerProfile(name=profile, plugins=list(plugins)),
        tier2=["127.0.0.1:9100"],
    )
    return Pool(name="bench", spec=spec)


def endpoint_state(pod: int, view: MetricsView) -> EndpointState:
    """What tier2's datalayer would hold after the scrape ``view``."""
    s = view.stats
    metrics = EndpointMetrics(
        scraped_at=view.scraped_at,
        waiting=s.num_waiting,
        running=s.num_running,
        kv_usage=s.kv_cache_usage,
        block_size=view.block_size,
        num_gpu_blocks=view.num_gpu_blocks,
        running_loras=s.running_lora_adapters,
        waiting_loras=s.waiting_lora_adapters,
        max_lora=view.max_lora,
        prefix_queries=float(s.prefix_cache_queries),
        prefix_hits=float(s.prefix_cache_hits),
    )
    return EndpointState(endpoint_id(pod), metrics, last_attempt_at=view.scraped_at)


def chat_body(payload: Any, model: str, max_tokens: int) -> dict[str, Any]:
    """The OpenAI chat body a simulated request stands for."""
    if not isinstance(payload, Payload):
        raise TypeError("requests routed by a PoolPicker need a workloads.Payload")
    return {
        "model": model,
        "messages": list(payload.messages),
        "max_tokens": max_tokens,
        "stream": True,
    }


class PickerRouter(BenchRouter):
    def __init__(
        self,
        profile: str,
        *,
        num_pods: int,
        model: str,
        scrape_interval_s: float,
        seed: int,
        plugins: Sequence[PluginConfig] = (),
        label: str | None = None,
    ) -> None:
        super().__init__()
        self.name = label or profile
        self.model = model
        self.picker = PoolPicker(
            make_pool(profile, num_pods, model, scrape_interval_s, plugins),
            random.Random(f"picker:{profile}:{seed}"),
        )
        self._ids = [endpoint_id(i) for i in range(num_pods)]
        self._pod = {eid: i for i, eid in enumerate(self._ids)}
        self._scraped_at: list[float | None] = [None] * num_pods
        self._states: dict[str, EndpointState] = {}
        self._picks: dict[str, Pick] = {}
        self.saturated_picks = 0

    def _sync(self, cluster: ClusterView) -> None:
        changed = False
        for i, eid in enumerate(self._ids):
            view = cluster.scrape(i)
            if view.scraped_at != self._scraped_at[i]:
                self._scraped_at[i] = view.scraped_at
                self._states[eid] = endpoint_state(i, view)
                changed = True
        if changed:
            self.picker.set_endpoints(self._states)

    def _prepare(self, req: PickRequest, request: SimRequest, cluster: ClusterView) -> PickRequest:
        """The request as the picker gets it (a subclass may put the truth in)."""
        return req

    def route(self, request: SimRequest, cluster: ClusterView) -> int:
        self._sync(cluster)
        body = chat_body(request.payload, self.model, request.max_tokens)
        req = self._prepare(
            self.picker.build_request(body, request_id=request.request_id, kind="chat"),
            request,
            cluster,
        )
        # The collector's pauses are the simulator's heap (long token-id lists: a young
        # collection takes milliseconds here), not tier2's: it waits until after the pick.
        gc.disable()
        try:
            c0, t0 = time.thread_time(), time.perf_counter()
            pick = self.picker.pick(req, cluster.now)
            t1, c1 = time.perf_counter(), time.thread_time()
        finally:
            gc.enable()
        self.pick_seconds.append(t1 - t0)
        self.pick_cpu_seconds.append(c1 - c0)
        if pick.saturated:
            self.saturated_picks += 1
        self._picks[request.request_id] = pick
        return self._pod[pick.endpoint]

    def first_token(self, request_id: str, pod: int, now: float) -> None:
        pick = self._picks.get(request_id)
        if pick is not None:
            self.picker.first_byte(pick, now)

    def finished(self, rec: RequestRecord) -> None:
        pick = self._picks.pop(rec.request_id, None)
        if pick is None:
            return
        text = tokenizer.decode_pseudo(rec.output_token_ids or ())
        self.picker.finish(
            pick, rec.finish, ok=True, cached_tokens=rec.cached_tokens, generated_text=text
        )
