"""Engine: scheduler invariants (property tests) and the behaviours routing relies on."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.vllmsim import tokenizer as tk
from bench.vllmsim.clock import ManualClock
from bench.vllmsim.engine import Engine, EngineConfig, Request, RequestSpec, RequestStatus


def make_engine(seed: int = 0, **overrides: object) -> Engine:
    cfg = EngineConfig.from_profile("gie-8b", **overrides)
    return Engine(cfg, ManualClock(), random.Random(seed))


def run_step(engine: Engine) -> None:
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    result = engine.step(clock.now())
    assert result is not None
    clock.t = result.plan.end


def run_all(engine: Engine, max_steps: int = 100_000) -> None:
    for _ in range(max_steps):
        if not engine.has_work():
            return
        run_step(engine)
    raise AssertionError("engine did not drain")


def spec(rid: str, prompt: list[int], max_tokens: int = 32, **kw: object) -> RequestSpec:
    return RequestSpec(rid, prompt, max_tokens, ignore_eos=True, **kw)  # type: ignore[arg-type]


# --- property tests ----------------------------------------------------------------

_req = st.tuples(
    st.integers(0, 3),  # shared prefix group
    st.integers(1, 60),  # own prompt tokens
    st.integers(1, 40),  # max_tokens
    st.integers(0, 6),  # arrives after this many steps
    st.sampled_from([None, None, "a", "b", "c"]),  # LoRA adapter
)


@settings(max_examples=60, deadline=None)
@given(
    reqs=st.lists(_req, min_size=1, max_size=25),
    num_blocks=st.integers(40, 90),
    max_num_seqs=st.integers(1, 8),
    budget=st.integers(8, 64),
    max_loras=st.integers(1, 2),
    seed=st.integers(0, 3),
)
def test_scheduler_invariants(
    reqs: list[tuple[int, int, int, int, str | None]],
    num_blocks: int,
    max_num_seqs: int,
    budget: int,
    max_loras: int,
    seed: int,
) -> None:
    engine = make_engine(
        seed,
        num_gpu_blocks=num_blocks,
        block_size=4,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=budget,
        max_model_len=150,
        max_loras=max_loras,
    )
    for name in ("a", "b", "c"):
        engine.add_lora(name)
    pending = sorted(enumerate(reqs), key=lambda x: x[1][3])
    admitted: list[Request] = []
    kv = engine.kv
    steps = 0
    while pending or engine.has_work():
        while pending and pending[0][1][3] <= steps:
            i, (group, own, max_tokens, _, lora) = pending.pop(0)
            prompt = [1000 + group] * 20 + [5000 + i * 100 + j for j in range(own)]
            r = engine.add_request(
                RequestSpec(f"r{i}", prompt, max_tokens, ignore_eos=bool(i % 2), lora=lora)
            )
            admitted.append(r)
        if engine.has_work():
            run_step(engine)
        steps += 1
        assert steps < 20_000, "no progress"
        # invariants after every step
        assert len(engine.running) <= max_num_seqs
        assert 0 <= kv.num_used() <= kv.usable_blocks
        held = {b for r in engine.running for b in r.block_ids}
        assert len(held) == kv.num_used()
        assert 0.0 <= engine.last_stats.kv_cache_usage <= 1.0
        assert len(engine.last_stats.running_lora_adapters) <= max_loras
    for r in admitted:
        assert r.status is RequestStatus.FINISHED
        assert r.num_output == r.target_len >= 1
        assert 0 <= r.num_cached_tokens <= r.num_prompt_tokens - 1
    assert kv.num_used() == 0
    assert engine.prefix_hits <= engine.prefix_queries


# --- behaviour ---------------------------------------------------------------------


def _prompt(i: int, n: int = 64) -> list[int]:
    return [100_000 + i * 1000 + j for j in range(n)]


def test_waiting_stays_zero_until_max_num_seqs_binds() -> None:
    engine = make_engine(max_num_seqs=4)
    waiting: list[int] = []
    for i in range(8):
        engine.add_request(spec(f"r{i}", _prompt(i), 500))
        run_step(engine)
        waiting.append(engine.last_stats.num_waiting)
    assert waiting[:4] == [0, 0, 0, 0]
    assert waiting[4:] == [1, 2, 3, 4]
    assert engine.last_stats.num_running == 4


def test_waiting_stays_zero_until_kv_cache_binds() -> None:
    # 60 usable blocks of 16; each request holds 512/16 = 32+ blocks -> one fits at a time
    engine = make_engine(num_gpu_blocks=61, max_model_len=900, max_num_batched_tokens=2048)
    engine.add_request(spec("a", _prompt(0, 512), 100))
    run_step(engine)
    assert engine.last_stats.num_waiting == 0
    assert engine.last_stats.kv_cache_usage > 0.5
    engine.add_request(spec("b", _prompt(1, 512), 100))
    run_step(engine)
    assert engine.last_stats.num_waiting == 1  # max_num_seqs (256) is far away
    assert engine.last_stats.num_running == 1


def test_chunked_prefill_spreads_a_long_prompt_over_steps() -> None:
    engine = make_engine(max_num_batched_tokens=32)
    r = engine.add_request(spec("a", _prompt(0, 100), 4))
    for _ in range(3):
        run_step(engine)
        assert r.num_output == 0
    run_step(engine)
    assert r.num_output == 1


def test_decodes_are_scheduled_before_new_prefills() -> None:
    engine = make_engine(max_num_batched_tokens=64)
    engine.add_request(spec("a", _prompt(0, 60), 50))
    run_step(engine)
    engine.add_request(spec("b", _prompt(1, 200), 50))
    plan = engine.begin_step(engine.clock.now())
    assert plan is not None
    assert [(r.request_id, n) for r, n in plan.scheduled] == [("a", 1), ("b", 63)]
    engine.finish_step(plan)


def _chat_turn(
    engine: Engine, rid: str, messages: list[dict[str, str]], max_tokens: int
) -> Request:
    r = engine.add_request(RequestSpec(rid, tk.encode_chat(messages), max_tokens, ignore_eos=True))
    run_all(engine)
    return r


def test_turn_two_hits_turn_one_prompt_and_answer() -> None:
    engine = make_engine()
    bs = engine.config.block_size
    msgs = [
        {"role": "system", "content": "You are terse. " * 40},
        {"role": "user", "content": "Tell me about caches. " * 10},
    ]
    t1 = _chat_turn(engine, "t1", msgs, 100)
    answer = tk.decode_pseudo(t1.output_token_ids)
    msgs2 = [*msgs, {"role": "assistant", "content": answer}, {"role": "user", "content": "More."}]
    t2 = _chat_turn(engine, "t2", msgs2, 10)
    # every full block of turn 1 whose KV was computed: prompt + answer minus the last token
    expected = (t1.num_prompt_tokens + t1.num_output - 1) // bs * bs
    assert t2.num_cached_tokens == expected
    assert expected > t1.num_prompt_tokens  # answer blocks are part of the hit


def test_shared_system_prompt_hits_across_users() -> None:
    engine = make_engine()
    system = {"role": "system", "content": "Company policy text. " * 60}
    a = _chat_turn(engine, "a", [system, {"role": "user", "content": "alice asks"}], 5)
    b = _chat_turn(engine, "b", [system, {"role": "user", "content": "bob asks"}], 5)
    sys_tokens = len(tk.encode(tk.render_chat([system], add_generation_prompt=False)))
    assert a.num_cached_tokens == 0
    assert b.num_cached_tokens >= sys_tokens // 16 * 16
    assert b.num_cached_tokens < b.num_prompt_tokens
    assert engine.prefix_hits == b.num_cached_tokens
    assert engine.prefix_queries == a.num_prompt_tokens + b.num_prompt_tokens


def _latencies(n: int) -> tuple[float, float]:
    engine = make_engine(seed=1)
    reqs = [engine.add_request(spec(f"r{i}", _prompt(i, 200), 64)) for i in range(n)]
    run_all(engine)
    ttft = statistics.mean(r.first_token_time - r.arrival_time for r in reqs)
    itl = statistics.mean((r.finish_time - r.first_token_time) / (r.num_output - 1) for r in reqs)
    return ttft, itl


def test_ttft_and_itl_grow_with_load() -> None:
    light, medium, heavy = _latencies(1), _latencies(8), _latencies(48)
    assert light[0] < medium[0] < heavy[0]
    assert light[1] < medium[1] < heavy[1]


def _status(r: Request) -> RequestStatus:
    return r.status  # read through a call: the status changes behind mypy's narrowing


def test_lora_request_waits_while_slots_are_busy() -> None:
    engine = make_engine(max_loras=1)
    engine.add_lora("sql")
    engine.add_lora("tweet")
    a = engine.add_request(spec("a", _prompt(0), 20, lora="sql"))
    run_step(engine)
    first_load = engine.profile.lora_load_ms
    assert first_load > 0
    b = engine.add_request(spec("b", _prompt(1), 5, lora="tweet"))
    base = engine.add_request(spec("c", _prompt(2), 5))
    run_step(engine)
    s = engine.last_stats
    assert b.status is RequestStatus.WAITING and base.status is RequestStatus.RUNNING
    assert s.running_lora_adapters == ("sql",)
    assert s.waiting_lora_adapters == ("tweet",)
    assert s.num_waiting == 1
    while a.status is not RequestStatus.FINISHED:
        run_step(engine)
    plan = engine.begin_step(engine.clock.now())
    assert plan is not None and plan.lora_loads == 1  # "tweet" is loaded into the slot
    engine.finish_step(plan)
    assert _status(b) is RequestStatus.RUNNING
    run_all(engine)
    assert b.finish_reason == "length" and b.num_output == 5


def test_preemption_recomputes_and_everything_finishes() -> None:
    engine = make_engine(num_gpu_blocks=12, block_size=16, max_model_len=170)
    reqs = [engine.add_request(spec(f"r{i}", _prompt(i, 40), 120)) for i in range(3)]
    run_all(engine)
    assert engine.num_preemptions > 0
    assert sum(r.num_preemptions for r in reqs) == engine.num_preemptions
    assert all(r.finish_reason == "length" and r.num_output == 120 for r in reqs)


def test_finished_blocks_stay_cached_but_count_as_free() -> None:
    engine = make_engine()
    _chat_turn(engine, "a", [{"role": "user", "content": "cache me " * 50}], 20)
    assert engine.last_stats.kv_cache_usage == 0.0
    assert engine.kv.num_cached() > 0


def test_output_length_draw_and_finish_reasons() -> None:
    engine = make_engine(seed=3)
    drawn = [engine.add_request(RequestSpec(f"r{i}", _prompt(i), 2000)) for i in range(30)]
    capped = engine.add_request(RequestSpec("cap", _prompt(99), 3))
    run_all(engine)
    assert len({r.num_output for r in drawn}) > 10
    assert all(r.finish_reason == "stop" for r in drawn if r.num_output < 2000)
    assert capped.num_output == 3 and capped.finish_reason == "length"


def test_same_seed_same_outputs() -> None:
    def run(seed: int) -> list[list[int]]:
        engine = make_engine(seed=seed)
        reqs = [engine.add_request(RequestSpec(f"r{i}", _prompt(i), 200)) for i in range(5)]
        run_all(engine)
        return [r.output_token_ids for r in reqs]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_abort_frees_blocks() -> None:
    engine = make_engine()
    engine.add_request(spec("a", _prompt(0, 300), 50))
    run_step(engine)
    assert engine.kv.num_used() > 0
    r = engine.abort("a")
    assert r is not None and r.finish_reason == "abort"
    assert engine.kv.num_used() == 0 and not engine.has_work()
    assert engine.abort("a") is None


def test_rejects_what_vllm_rejects() -> None:
    engine = make_engine(max_model_len=100)
    with pytest.raises(ValueError):
        engine.add_request(spec("a", _prompt(0, 90), 20))
    with pytest.raises(ValueError):
        engine.add_request(spec("b", [], 5))
    with pytest.raises(ValueError):
        engine.add_request(spec("c", _prompt(0, 5), 5, lora="missing"))
    with pytest.raises(ValueError):
        EngineConfig.from_profile("gie-8b", num_gpu_blocks=10, max_model_len=1000)


def test_plan_emits_predicts_finish_step() -> None:
    """What a real-time driver prepares while a step runs is what the step emits, with
    chunked prefills, preemptions (a small KV cache), stops and length limits."""
    engine = make_engine(3, num_gpu_blocks=60, block_size=16, max_model_len=600)
    rng = random.Random(3)
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    checked = finals = added = 0
    for i in range(20_000):
        if not engine.has_work() and i >= 300:
            break
        if i < 300 and rng.random() < 0.5:
            prompt = [rng.randrange(1000, 2000) for _ in range(rng.randint(1, 400))]
            max_tokens = rng.randint(1, 600 - len(prompt))
            engine.add_request(RequestSpec(f"r{i}", prompt, max_tokens, rng.random() < 0.5))
            added += 1
        plan = engine.begin_step(clock.now())
        if plan is None:
            continue
        predicted = engine.plan_emits(plan)
        result = engine.finish_step(plan)
        clock.t = plan.end
        assert [r for r, _ in predicted] == result.emitted
        for req, reason in predicted:
            assert reason == (req.finish_reason if req in result.finished else "")
            finals += bool(reason)
        checked += len(predicted)
    assert finals == added > 100 and checked > 10 * finals and engine.num_preemptions > 0
