"""Prefix hashing (canonical text, chains, extension) and the bounded prefix index."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tier2.prefix import hashing
from tier2.prefix.index import PrefixIndex

SEED = hashing.seed_hash("m")


def chain(
    text: str | bytes, block: int = 8, max_blocks: int = 100, kind: hashing.ChainKind = "completion"
) -> hashing.PrefixChain:
    return hashing.chain(text, SEED, block_chars=block, max_blocks=max_blocks, kind=kind)


# --- hashing -------------------------------------------------------------------------


def test_full_blocks_only_and_the_tail_is_kept() -> None:
    c = chain("a" * 20)
    assert len(c.hashes) == 2 and c.tail == b"aaaa" and c.extendable


def test_shared_text_shares_leading_hashes() -> None:
    a, b = chain("x" * 16 + "hello world!"), chain("x" * 16 + "hello there!")
    assert a.hashes[:2] == b.hashes[:2] and a.hashes[2] != b.hashes[2]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("m", None, None), ("m", "lora", None)),
        (("m", None, None), ("m2", None, None)),
        (("m", None, None), ("m", None, "salt")),
    ],
)
def test_seed_scopes_the_cache(
    a: tuple[str, str | None, str | None], b: tuple[str, str | None, str | None]
) -> None:
    assert hashing.seed_hash(*a) != hashing.seed_hash(*b)
    ca = hashing.chain(
        "q" * 32, hashing.seed_hash(*a), block_chars=8, max_blocks=9, kind="completion"
    )
    cb = hashing.chain(
        "q" * 32, hashing.seed_hash(*b), block_chars=8, max_blocks=9, kind="completion"
    )
    assert not set(ca.hashes) & set(cb.hashes)


def test_cap_truncates_and_blocks_extension() -> None:
    c = chain("z" * 100, max_blocks=3)
    assert len(c.hashes) == 3 and c.truncated and not c.extendable
    assert hashing.extend(c, "more text here") is c
    exact = chain("z" * 24, max_blocks=3)  # exactly the cap: nothing was cut
    assert not exact.truncated


@given(st.text(max_size=80), st.text(max_size=80))
def test_extension_equals_hashing_the_whole_text(first: str, second: str) -> None:
    whole = chain(first + second)
    assert hashing.extend(chain(first), second).hashes == whole.hashes


def test_chat_answer_continues_into_the_next_turn() -> None:
    turn1 = [
        {"role": "system", "content": "be brief " * 5},
        {"role": "user", "content": "hi there"},
    ]
    answer = "hello! how can I help you today?"
    turn2 = [*turn1, {"role": "assistant", "content": answer}, {"role": "user", "content": "next"}]
    c1 = hashing.chain(hashing.chat_text(turn1), SEED, block_chars=8, max_blocks=999, kind="chat")
    c2 = hashing.chain(hashing.chat_text(turn2), SEED, block_chars=8, max_blocks=999, kind="chat")
    extended = hashing.extend(c1, answer)
    assert len(extended.hashes) > len(c1.hashes)
    assert c2.hashes[: len(extended.hashes)] == extended.hashes


def test_json_format_is_gie_like_and_not_extendable() -> None:
    msgs = [{"role": "user", "content": "hello"}]
    assert hashing.chat_text(msgs, "json") == b'[{"role":"user","content":"hello"}]'
    c = hashing.chain(
        hashing.chat_text(msgs * 9, "json"), SEED, block_chars=8, max_blocks=99, kind="opaque"
    )
    assert not c.extendable and hashing.extend(c, "answer text") is c


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("plain", "plain"),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "ab"),
        (None, ""),
        (
            [{"type": "image_url", "image_url": {"url": "u"}}],
            '{"image_url":{"url":"u"},"type":"image_url"}',
        ),
    ],
)
def test_content_text(content: object, text: str) -> None:
    assert hashing.content_text(content) == text


def test_tool_calls_are_part_of_the_message() -> None:
    a = hashing.message_text({"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]})
    b = hashing.message_text({"role": "assistant", "content": None, "tool_calls": [{"id": "2"}]})
    assert a != b


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("abc", b"abc"),
        (["first", "second"], b"first"),
        ([1, 2, 3], b"1,2,3"),
        ([[4, 5], [6]], b"4,5"),
        (None, b""),
    ],
)
def test_prompt_text(prompt: object, expected: bytes) -> None:
    assert hashing.prompt_text(prompt) == expected


# --- index ---------------------------------------------------------------------------


def test_match_counts_leading_blocks_per_endpoint() -> None:
    idx = index("a", "b", "c")
    idx.record("a", [1, 2, 3, 4])
    idx.record("b", [1, 2])
    idx.record("c", [9, 2, 3])
    assert idx.match([1, 2, 3, 4, 5]) == {"a": 4, "b": 2}
    assert idx.match([1]) == {"a": 1, "b": 1}
    assert idx.match([]) == {}
    assert idx.match([7, 1]) == {}


def test_lru_evicts_a_chains_tail_first() -> None:
    idx = index("a", capacity=5)
    idx.record("a", [1, 2, 3])
    idx.record("a", [10, 11, 12])  # needs room: chain 1's tail goes first
    assert idx.match([1, 2, 3]) == {"a": 2}
    assert idx.match([10, 11, 12]) == {"a": 3}
    idx.record("a", [1, 2, 3])  # touching chain 1 makes it fresh again
    assert idx.match([1, 2, 3]) == {"a": 3}
    assert idx.match([10, 11, 12]) == {"a": 2}


def test_discard_and_resize_and_remove() -> None:
    idx = index("a", capacity=50)
    idx.record("a", list(range(10)))
    idx.discard("a", list(range(10))[6:])
    assert idx.match(list(range(10))) == {"a": 6}
    idx.resize("a", 3)
    assert idx.match(list(range(10))) == {"a": 3} and idx.capacity("a") == 3
    idx.remove("a")
    idx.record("a", [0])  # a removed endpoint records nothing
    assert idx.match([0]) == {} and idx.endpoints() == []


def test_global_bound_is_shared_between_endpoints() -> None:
    idx = index("a", bound=10)
    idx.record("a", list(range(10)))
    assert idx.size("a") == 10
    idx.add("b")
    assert idx.capacity("a") == 5 and idx.size("a") == 5


def test_correct_tracks_precision_and_shrinks_an_over_predicting_endpoint() -> None:
    idx = index("a", bound=10_000, capacity=1000)
    idx.record("a", list(range(1000)))
    idx.correct("a", predicted_blocks=100, actual_blocks=99)  # within slack: a hit
    assert idx.stats()["a"].misses == 0 and idx.capacity("a") == 1000
    idx.correct("a", predicted_blocks=100, actual_blocks=10)
    s = idx.stats()["a"]
    assert s.misses == 1 and s.samples == 2
    after_hit = 1.0 + 0.1 * (0.99 - 1.0)  # EWMA (alpha 0.1) of min(actual, predicted) / predicted
    assert s.precision == pytest.approx(after_hit + 0.1 * (0.10 - after_hit))
    assert idx.capacity("a") == 900 and idx.size("a") == 900
    assert (s.predicted_blocks, s.actual_blocks) == (200, 109)
    idx.correct("a", predicted_blocks=0, actual_blocks=5)  # nothing predicted: no precision sample
    assert idx.precision("a") == pytest.approx(s.precision)
    assert idx.precision("unknown") == 1.0


def test_correct_without_shrinking_learns_precision_only() -> None:
    idx = PrefixIndex(max_total_blocks=10_000, default_capacity=1000, shrink_on_miss=False)
    idx.add("a")
    idx.record("a", list(range(1000)))
    idx.correct("a", predicted_blocks=100, actual_blocks=10)
    s = idx.stats()["a"]
    assert s.misses == 1 and s.precision == pytest.approx(0.91)
    assert idx.capacity("a") == 1000 and idx.size("a") == 1000


def linear_match(idx: PrefixIndex, hashes: list[int]) -> dict[str, int]:
    out = {}
    for ep in idx.endpoints():
        n = 0
        while n < len(hashes) and idx.holds(ep, hashes[n]):
            n += 1
        if n:
            out[ep] = n
    return out


def index(*endpoints: str, bound: int = 1000, capacity: int = 100) -> PrefixIndex:
    idx = PrefixIndex(max_total_blocks=bound, default_capacity=capacity)
    for e in endpoints:
        idx.add(e)
    return idx


CHAINS = [list(range(100 * k, 100 * k + 12)) for k in range(4)]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["record", "discard", "resize", "add", "remove", "correct"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 3),
        st.integers(0, 12),
    ),
    max_size=50,
)


@settings(max_examples=200, deadline=None)
@given(OPS, st.integers(1, 40))
def test_index_never_exceeds_its_bound_and_match_is_exact(
    ops: list[tuple[str, str, int, int]], bound: int
) -> None:
    idx = PrefixIndex(max_total_blocks=bound, default_capacity=25)
    for op, ep, k, n in ops:
        chain_k = CHAINS[k]
        if op == "record":
            idx.record(ep, chain_k[: n or 1])
        elif op == "discard":
            idx.discard(ep, chain_k[n:])
        elif op == "resize":
            idx.resize(ep, n * 3)
        elif op == "add":
            idx.add(ep)
        elif op == "remove":
            idx.remove(ep)
        else:
            idx.correct(ep, predicted_blocks=12, actual_blocks=n)
        assert idx.total_entries() <= bound
        for e in idx.endpoints():
            assert idx.size(e) <= idx.capacity(e)
        for c in CHAINS:
            assert idx.match(c) == linear_match(idx, c)
