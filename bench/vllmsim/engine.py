"""The engine model: vLLM V1's iteration-level scheduler over a paged KV cache.

Pure and synchronous: it never sleeps and never reads the wall clock. Time comes from
an injected :class:`Clock` (arrival stamps) and from the ``now`` given to
:meth:`Engine.begin_step`; randomness from an injected ``random.Random``. The same code
therefore runs behind the HTTP server (a scaled real-time clock) and inside the
discrete-event simulator (a virtual clock).

One step is two calls, so a driver can let time pass in between:

* :meth:`Engine.begin_step` schedules the batch (vLLM ``Scheduler.schedule``) and returns a
  :class:`StepPlan` whose ``end`` is ``now`` plus the profile's step time.
* :meth:`Engine.finish_step` applies the model output at ``plan.end`` (vLLM
  ``update_from_output``): one new token per sequence whose prompt is complete,
  finished requests leave and release their blocks, and a :class:`SchedulerStats`
  snapshot is published. Metrics read that snapshot, so they show the state as of the
  last completed step, as vLLM's do.

Scheduling rules (vLLM V1):

* Running requests go first, in admission order (decodes and unfinished prefill chunks),
  then waiting requests in FCFS order, all within ``max_num_batched_tokens``; a long
  prompt is prefilled in chunks over several steps.
* A waiting request is admitted only if ``max_num_seqs`` allows and its blocks fit
  (after prefix-cache hits); otherwise the queue stops there (head-of-line).
* If a running request needs a block that is not there, the newest running request is
  preempted (its blocks freed, progress recomputed later), put at the head of the
  waiting queue and counted; no waiting request is admitted in a step that preempted.
* LoRA: at most ``max_loras`` distinct adapters run at once. A request for another
  adapter is skipped (it stays waiting) until a slot frees. Moving an adapter into a
  GPU slot costs the profile's ``lora_load_ms`` in that step.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from bench.vllmsim.clock import Clock
from bench.vllmsim.kvcache import KVCacheManager, scope_id
from bench.vllmsim.profiles import Profile, get_profile
from bench.vllmsim.request import Request, RequestSpec, RequestStatus
from bench.vllmsim.tokenizer import pseudo_output_ids

__all__ = [
    "Engine",
    "EngineConfig",
    "Request",
    "RequestSpec",
    "RequestStatus",
    "SchedulerStats",
    "StepPlan",
    "StepResult",
]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """One vLLM engine's arguments plus the step-time profile that prices its steps."""

    profile: Profile
    model_name: str = "sim-llama-8b"
    num_gpu_blocks: int = 2810
    block_size: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 512
    max_model_len: int = 8192
    max_loras: int = 0
    """0 disables LoRA (vLLM without ``--enable-lora``)."""
    enable_prefix_caching: bool = True
    gpu_memory_utilization: float = 0.9
    engine_index: int = 0

    def __post_init__(self) -> None:
        if self.max_model_len > (self.num_gpu_blocks - 1) * self.block_size:
            raise ValueError(
                f"max_model_len {self.max_model_len} exceeds the KV cache capacity of "
                f"{(self.num_gpu_blocks - 1) * self.block_size} tokens"
            )
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1 or self.max_loras < 0:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be positive")

    @classmethod
    def from_profile(
        cls, profile: Profile | str | None = None, **overrides: object
    ) -> EngineConfig:
        """The profile's engine defaults, with keyword overrides (``None`` values ignored)."""
        prof = profile if isinstance(profile, Profile) else get_profile(profile or "gie-8b")
        e = prof.engine
        kwargs: dict[str, object] = {
            "num_gpu_blocks": e.num_gpu_blocks,
            "block_size": e.block_size,
            "max_num_seqs": e.max_num_seqs,
            "max_num_batched_tokens": e.max_num_batched_tokens,
            "max_model_len": e.max_model_len,
            "gpu_memory_utilization": e.gpu_memory_utilization,
        }
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(profile=prof, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """What ``/metrics`` shows after a step: gauges now, counters as running totals."""

    time: float
    num_running: int
    num_waiting: int
    kv_cache_usage: float
    prefix_cache_queries: int
    prefix_cache_hits: int
    num_preemptions: int
    prompt_tokens: int
    generation_tokens: int
    running_lora_adapters: tuple[str, ...] = ()
    waiting_lora_adapters: tuple[str, ...] = ()


@dataclass(slots=True)
class StepPlan:
    start: float
    end: float
    scheduled: list[tuple[Request, int]]
    prefill_tokens: int
    kv_tokens: int
    num_decodes: int
    lora_loads: int
    num_preempted: int

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class StepResult:
    plan: StepPlan
    emitted: list[Request]
    """Requests that got one new token at ``plan.end``."""
    finished: list[Request]
    stats: SchedulerStats
    ttfts: list[float] = field(default_factory=list)
    """Time to first token of requests whose first token came in this step."""


class Engine:
    """One simulated vLLM engine core (scheduler + KV cache + LoRA slots)."""

    def __init__(self, config: EngineConfig, clock: Clock, rng: random.Random) -> None:
        self.config = config
        self.profile = config.profile
        self.clock = clock
        self.rng = rng
        self.kv = KVCacheManager(
            config.num_gpu_blocks, config.block_size, config.enable_prefix_caching
        )
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.requests: dict[str, Request] = {}
        self._base_scope = scope_id(config.model_name)
        self.lora_adapters: dict[str, int] = {}
        self.lora_slots: OrderedDict[str, None] = OrderedDict()
        self._running_loras: dict[str, int] = {}
        self._waiting_loras: dict[str, int] = {}
        self._inflight: StepPlan | None = None
        self.prefix_queries = 0
        self.prefix_hits = 0
        self.num_preemptions = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.num_steps = 0
        self.last_stats = self._stats(0.0)

    # --- requests ------------------------------------------------------------------

    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    def add_request(self, spec: RequestSpec, now: float | None = None) -> Request:
        """Queue a request. ``ValueError`` for requests vLLM would reject."""
        cfg = self.config
        n_prompt = len(spec.prompt_token_ids)
        if n_prompt < 1:
            raise ValueError("prompt must contain at least one token")
        if spec.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {spec.max_tokens}.")
        if n_prompt + spec.max_tokens > cfg.max_model_len:
            raise ValueError("prompt plus max_tokens exceeds max_model_len")
        if spec.request_id in self.requests:
            raise ValueError(f"duplicate request id {spec.request_id!r}")
        if spec.lora is not None and spec.lora not in self.lora_adapters:
            raise ValueError(f"unknown LoRA adapter {spec.lora!r}")
        if spec.output_token_ids is not None and len(spec.output_token_ids) > 0:
            planned = list(spec.output_token_ids[: spec.max_tokens])
            stop = "length" if len(planned) >= spec.max_tokens else "stop"
        else:
            if spec.ignore_eos:
                n = spec.max_tokens
            else:
                n = min(spec.max_tokens, self.profile.output_len.draw(self.rng))
            planned = pseudo_output_ids(self.rng.getrandbits(16), n)
            stop = "length" if n >= spec.max_tokens else "stop"
        scope = self._base_scope if spec.lora is None else self.lora_adapters[spec.lora]
        req = Request(spec, scope, planned, stop, self.clock.now() if now is None else now)
        self.kv.extend_hashes(req)
        self.requests[spec.request_id] = req
        self.waiting.append(req)
        if req.lora is not None:
            _inc(self._waiting_loras, req.lora)
        return req

    def abort(self, request_id: str, now: float | None = None) -> Request | None:
        """Drop a request (client went away). Returns it, or None if already gone."""
        req = self.requests.pop(request_id, None)
        if req is None:
            return None
        if req.status is RequestStatus.RUNNING:
            self.running.remove(req)
            self.kv.free_seq(req)
            if req.lora is not None:
                _dec(self._running_loras, req.lora)
        else:
            self.waiting.remove(req)
            if req.lora is not None:
                _dec(self._waiting_loras, req.lora)
        req.status = RequestStatus.FINISHED
        req.finish_reason = "abort"
        req.finish_time = self.clock.now() if now is None else now
        return req

    # --- LoRA ----------------------------------------------------------------------

    def add_lora(self, name: str) -> bool:
        """Register an adapter (vLLM ``load_lora_adapter``); False if already registered."""
        if self.config.max_loras < 1:
            raise ValueError("LoRA is not enabled on this engine (max_loras is 0)")
        if name in self.lora_adapters or name == self.config.model_name:
            return False
        self.lora_adapters[name] = scope_id("lora:" + name)
        return True

    def remove_lora(self, name: str) -> bool:
        """Unregister an adapter; queued and running requests for it still complete."""
        if self.lora_adapters.pop(name, None) is None:
            return False
        if name not in self._running_loras:
            self.lora_slots.pop(name, None)
        return True

    # --- one step ------------------------------------------------------------------

    def begin_step(self, now: float | None = None) -> StepPlan | None:
        """Schedule the next batch at ``now``; None when there is nothing to run."""
        if self._inflight is not None:
            raise RuntimeError("begin_step called twice without finish_step")
        if not (self.running or self.waiting):
            return None
        t = self.clock.now() if now is None else now
        cfg = self.config
        kv = self.kv
        running = self.running
        budget = cfg.max_num_batched_tokens
        scheduled: list[tuple[Request, int]] = []
        prefill = kv_tokens = n_dec = preempted = lora_loads = 0

        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            n_tok = len(req.token_ids)
            num_new = n_tok - req.num_computed
            if num_new > budget:
                num_new = budget
            ok = kv.allocate_slots(req, req.num_computed, num_new)
            while not ok:
                victim = running.pop()
                self._preempt(victim)
                preempted += 1
                if victim is req:
                    break
                ok = kv.allocate_slots(req, req.num_computed, num_new)
            if not ok:
                break
            scheduled.append((req, num_new))
            budget -= num_new
            if num_new == 1 and req.num_output and req.num_computed == n_tok - 1:
                n_dec += 1
                kv_tokens += req.num_computed
            else:
                prefill += num_new
            i += 1

        if not preempted and self.waiting:
            p_tok, lora_loads = self._admit(t, budget, scheduled)
            prefill += p_tok

        if not scheduled:
            return None
        dur = self.profile.step_seconds(prefill, kv_tokens, n_dec, lora_loads)
        plan = StepPlan(t, t + dur, scheduled, prefill, kv_tokens, n_dec, lora_loads, preempted)
        self._inflight = plan
        return plan

    def _admit(
        self, now: float, budget: int, scheduled: list[tuple[Request, int]]
    ) -> tuple[int, int]:
        """Admit waiting requests FCFS; returns (prefill tokens, LoRA slot loads)."""
        cfg = self.config
        kv = self.kv
        bs = cfg.block_size
        running = self.running
        waiting = self.waiting
        max_loras = cfg.max_loras
        skipped: list[Request] = []
        prefill = loads = 0
        while waiting and budget > 0 and len(running) < cfg.max_num_seqs:
            req = waiting[0]
            lora = req.lora
            if (
                lora is not None
                and lora not in self._running_loras
                and len(self._running_loras) >= max_loras
            ):
                skipped.append(waiting.popleft())
                continue
            hits = kv.find_cached_prefix(req)
            n_hit = len(hits) * bs
            num_new = len(req.token_ids) - n_hit
            if num_new > budget:
                num_new = budget
            if not kv.allocate_slots(req, n_hit, num_new, hits):
                break
            waiting.popleft()
            req.status = RequestStatus.RUNNING
            req.num_computed = n_hit
            running.append(req)
            if req.first_scheduled_time < 0:
                req.first_scheduled_time = now
                req.num_cached_tokens = n_hit
            self.prefix_queries += len(req.token_ids)
            self.prefix_hits += n_hit
            if lora is not None:
                _dec(self._waiting_loras, lora)
                _inc(self._running_loras, lora)
                if lora in self.lora_slots:
                    self.lora_slots.move_to_end(lora)
                else:
                    loads += 1
                    self._load_lora_slot(lora)
            scheduled.append((req, num_new))
            budget -= num_new
            prefill += num_new
        for req in reversed(skipped):
            waiting.appendleft(req)
        return prefill, loads

    def _load_lora_slot(self, lora: str) -> None:
        slots = self.lora_slots
        if len(slots) >= self.config.max_loras:
            for name in slots:
                if name not in self._running_loras or name == lora:
                    del slots[name]
                    break
        slots[lora] = None

    def _preempt(self, req: Request) -> None:
        self.kv.free_seq(req)
        req.num_computed = 0
        req.status = RequestStatus.WAITING
        req.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(req)
        if req.lora is not None:
            _dec(self._running_loras, req.lora)
            _inc(self._waiting_loras, req.lora)

    def plan_emits(self, plan: StepPlan) -> list[tuple[Request, str]]:
        """The requests ``finish_step(plan)`` will give a token, in its order, each with
        the finish reason that token ends it with (``""`` if none), provided none is
        aborted meanwhile. A real-time driver uses it to prepare a step's output while
        the step runs. Mirrors the emission rule of :meth:`finish_step`."""
        out: list[tuple[Request, str]] = []
        max_len = self.config.max_model_len
        for req, num_new in plan.scheduled:
            n_tok = len(req.token_ids)
            if req.num_computed + num_new < n_tok:
                continue  # a prefill chunk that does not complete the prompt
            if req.num_output + 1 >= req.target_len:
                out.append((req, req.stop_reason))
            else:
                out.append((req, "length" if n_tok + 1 >= max_len else ""))
        return out

    def finish_step(self, plan: StepPlan) -> StepResult:
        """Apply the step's output at ``plan.end``."""
        if plan is not self._inflight:
            raise RuntimeError("finish_step called with a plan that is not in flight")
        self._inflight = None
        self.num_steps += 1
        end = plan.end
        kv = self.kv
        bs = kv.block_size
        max_len = self.config.max_model_len
        running_status = RequestStatus.RUNNING
        emitted: list[Request] = []
        finished: list[Request] = []
        ttfts: list[float] = []
        for req, num_new in plan.scheduled:
            if req.status is not running_status:
                continue  # aborted while the step was in flight
            req.num_computed += num_new
            toks = req.token_ids
            if req.num_computed < len(toks):
                continue  # a prefill chunk that does not complete the prompt
            k = req.num_output
            toks.append(req.planned[k])
            req.num_output = k + 1
            if len(toks) % bs == 0:
                kv.extend_hashes(req)
            if k == 0:
                req.first_token_time = end
                ttfts.append(end - req.arrival_time)
                self.prompt_tokens += req.num_prompt_tokens
            req.prev_token_time = req.last_token_time
            req.last_token_time = end
            emitted.append(req)
            if k + 1 >= req.target_len or len(toks) >= max_len:
                req.finish_reason = req.stop_reason if k + 1 >= req.target_len else "length"
                req.finish_time = end
                finished.append(req)
        self.generation_tokens += len(emitted)
        if finished:
            for req in finished:
                req.status = RequestStatus.FINISHED
                kv.free_seq(req)
                del self.requests[req.request_id]
                if req.lora is not None:
                    _dec(self._running_loras, req.lora)
                    if req.lora not in self.lora_adapters and req.lora not in self._running_loras:
                        self.lora_slots.pop(req.lora, None)
            self.running = [r for r in self.running if r.status is running_status]
        stats = self._stats(end)
        self.last_stats = stats
        return StepResult(plan, emitted, finished, stats, ttfts)

    def step(self, now: float | None = None) -> StepResult | None:
        """``begin_step`` and ``finish_step`` back to back (tests, simple drivers)."""
        plan = self.begin_step(now)
        return None if plan is None else self.finish_step(plan)

    def _stats(self, t: float) -> SchedulerStats:
        return SchedulerStats(
            time=t,
            num_running=len(self.running),
            num_waiting=len(self.waiting),
            kv_cache_usage=self.kv.usage(),
            prefix_cache_queries=self.prefix_queries,
            prefix_cache_hits=self.prefix_hits,
            num_preemptions=self.num_preemptions,
            prompt_tokens=self.prompt_tokens,
            generation_tokens=self.generation_tokens,
            running_lora_adapters=tuple(self._running_loras),
            waiting_lora_adapters=tuple(self._waiting_loras),
        )


def _inc(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _dec(counts: dict[str, int], key: str) -> None:
    n = counts[key] - 1
    if n:
        counts[key] = n
    else:
        del counts[key]
