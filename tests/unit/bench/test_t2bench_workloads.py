"""tier2 benchmark workloads: text and token ids agree, shapes, determinism."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.tier2_bench.prompts import TextPool, chat_ids, message, prompt_ids
from bench.tier2_bench.workloads import (
    BurstSpec,
    BurstWorkload,
    ChatSpec,
    ChatWorkload,
    MixedWorkload,
    Payload,
    SharedPrefixCorpus,
    SharedPrefixSpec,
    SharedPrefixWorkload,
    ShortSpec,
    ShortWorkload,
)
from bench.vllmsim.des import RequestRecord, SimRequest
from bench.vllmsim.tokenizer import pseudo_output_ids

POOL = TextPool(num_words=5000)
SMALL = SharedPrefixSpec(groups=4, users=3, system_tokens=300, question_tokens=60, output_tokens=20)


def _messages(req: SimRequest) -> list[dict[str, str]]:
    assert isinstance(req.payload, Payload)
    return list(req.payload.messages)


def _finished(req: SimRequest, answer: list[int], finish: float) -> RequestRecord:
    return RequestRecord(
        request_id=req.request_id,
        pod=0,
        arrival=req.arrival,
        first_scheduled=req.arrival,
        first_token=req.arrival + 0.1,
        finish=finish,
        prompt_tokens=len(req.prompt_token_ids),
        output_tokens=len(answer),
        cached_tokens=0,
        finish_reason="length",
        preemptions=0,
        session=None,
        payload=req.payload,
        output_token_ids=answer,
    )


@pytest.mark.parametrize("tokens", [1, 2, 16, 300])
def test_passage_has_the_requested_token_count(tokens: int) -> None:
    text, ids = POOL.passage(random.Random(tokens), tokens, "lead1")
    assert text.startswith("lead1")
    assert len(ids) == max(tokens, 1)
    assert 3.0 < len(text) / len(ids) < 5.5 or tokens < 16


@given(
    roles=st.lists(st.sampled_from(["system", "user", "assistant"]), min_size=1, max_size=5),
    sizes=st.lists(st.integers(1, 80), min_size=5, max_size=5),
    seed=st.integers(0, 1000),
)
@settings(max_examples=40, deadline=None)
def test_fast_token_ids_equal_tokenizing_the_rendered_chat(
    roles: list[str], sizes: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    parts = [
        message(role, *POOL.passage(rng, n, f"m{i}"))
        for i, (role, n) in enumerate(zip(roles, sizes, strict=False))
    ]
    assert prompt_ids(parts) == chat_ids([p.message for p in parts])


def test_shared_prefix_requests_share_exactly_their_group_prefix() -> None:
    corpus = SharedPrefixCorpus(SMALL, POOL)
    reqs = SharedPrefixWorkload(corpus, rate=50.0).initial(10.0)
    assert 400 < len(reqs) < 600
    assert all(r.max_tokens == 20 and r.ignore_eos for r in reqs)
    system_ids = corpus.systems[0].ids
    for r in reqs:
        msgs = _messages(r)
        assert [m["role"] for m in msgs] == ["system", "user"]
        assert list(r.prompt_token_ids) == chat_ids(msgs)
        group_zero = msgs[0] == corpus.systems[0].message
        assert (tuple(r.prompt_token_ids[: len(system_ids)]) == system_ids) == group_zero
    # different groups differ from the very first block of 16 tokens
    firsts = {tuple(s.ids[:16]) for s in corpus.systems}
    assert len(firsts) == SMALL.groups


def test_workloads_are_deterministic_and_rate_sized() -> None:
    corpus = SharedPrefixCorpus(SMALL, POOL)
    a = SharedPrefixWorkload(corpus, 5.0, seed=3).initial(100.0)
    b = SharedPrefixWorkload(corpus, 5.0, seed=3).initial(100.0)
    c = SharedPrefixWorkload(corpus, 5.0, seed=4).initial(100.0)
    key = [(r.request_id, r.arrival, tuple(r.prompt_token_ids)) for r in a]
    assert key == [(r.request_id, r.arrival, tuple(r.prompt_token_ids)) for r in b]
    assert key != [(r.request_id, r.arrival, tuple(r.prompt_token_ids)) for r in c]
    assert 400 <= len(a) <= 600
    assert all(0 <= r.arrival < 100.0 for r in a)


def test_chat_turns_extend_the_history_with_the_answer() -> None:
    spec = ChatSpec(system_tokens=50, turns=(3, 3), user_tokens=(5, 10), answer_max=30)
    chat = ChatWorkload(spec, conversation_rate=1.0, pool=POOL, seed=1)
    first = chat.initial(5.0)
    assert first and all(r.request_id.endswith("-t1") for r in first)
    req: SimRequest | None = first[0]
    turns = 0
    while req is not None:
        turns += 1
        msgs = _messages(req)
        assert list(req.prompt_token_ids) == chat_ids(msgs)
        assert msgs[0] == chat.system.message
        answer = pseudo_output_ids(turns, req.max_tokens)
        nxt = chat.follow_up(_finished(req, answer, finish=req.arrival + 1.0))
        if nxt is not None:
            # the next prompt starts with this prompt followed by the answer
            n = len(req.prompt_token_ids)
            assert list(nxt.prompt_token_ids[:n]) == list(req.prompt_token_ids)
            assert list(nxt.prompt_token_ids[n : n + len(answer)]) == answer
            assert nxt.arrival > req.arrival + 1.0
        req = nxt
    assert turns == 3


def test_chat_content_does_not_depend_on_other_conversations() -> None:
    spec = ChatSpec(system_tokens=50, user_tokens=(5, 10))
    a = ChatWorkload(spec, 1.0, POOL, seed=2).initial(20.0)
    b = ChatWorkload(spec, 1.0, POOL, seed=2).initial(20.0)
    assert [tuple(r.prompt_token_ids) for r in a] == [tuple(r.prompt_token_ids) for r in b]


def test_bursts_arrive_together_behind_one_document() -> None:
    spec = BurstSpec(mean_interval_s=5.0, size=(32, 40), documents=2, document_tokens=100)
    bursts = BurstWorkload(spec, POOL, seed=0)
    reqs = bursts.initial(30.0)
    by_burst: dict[str, list[SimRequest]] = {}
    for r in reqs:
        by_burst.setdefault(r.request_id.split("-")[0], []).append(r)
    assert by_burst
    for members in by_burst.values():
        assert 32 <= len(members) <= 40
        assert len({r.arrival for r in members}) == 1
        assert len({_messages(r)[0]["content"] for r in members}) == 1
        assert len({tuple(r.prompt_token_ids) for r in members}) == len(members)


def test_short_prompts_share_no_block() -> None:
    reqs = ShortWorkload(ShortSpec(prompt_tokens=(20, 40)), 20.0, POOL).initial(10.0)
    assert len({tuple(r.prompt_token_ids[:16]) for r in reqs}) == len(reqs)
    assert all(list(r.prompt_token_ids) == chat_ids(_messages(r)) for r in reqs[:20])


def test_mixed_workload_merges_in_time_order_and_routes_follow_ups() -> None:
    spec = ChatSpec(system_tokens=30, turns=(2, 2), user_tokens=(5, 5))
    chat = ChatWorkload(spec, 1.0, POOL)
    mixed = MixedWorkload((chat, BurstWorkload(BurstSpec(mean_interval_s=3.0), POOL)))
    reqs = mixed.initial(10.0)
    assert [r.arrival for r in reqs] == sorted(r.arrival for r in reqs)
    first_turn = next(r for r in reqs if r.request_id.startswith("c"))
    nxt = mixed.follow_up(_finished(first_turn, [20, 21], first_turn.arrival + 1))
    assert nxt is not None and nxt.request_id.endswith("-t2")
    burst = next(r for r in reqs if r.request_id.startswith("e"))
    assert mixed.follow_up(_finished(burst, [20], burst.arrival + 1)) is None
