"""Attempt plans and passive health: pure tables with an injected RNG and time."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from common.config.backend import OutlierDetection
from tier1.routing.health import BackendHealth
from tier1.routing.plan import Candidate, attempts


def _c(name: str, priority: int = 0, weight: float = 1.0) -> Candidate[str]:
    return Candidate(name, name, priority, weight)


def _names(
    cands: list[Candidate[str]],
    n: int,
    down: frozenset[str] | set[str] = frozenset(),
    seed: int = 1,
) -> list[str]:
    return [
        c.name
        for c in attempts(
            cands, max_attempts=n, available=lambda x: x not in down, rng=random.Random(seed)
        )
    ]


def test_priority_groups_in_order() -> None:
    cands = [_c("backup", 1), _c("a", 0), _c("b", 0)]
    for seed in range(20):
        order = _names(cands, 3, seed=seed)
        assert order[2] == "backup" and set(order[:2]) == {"a", "b"}


def test_weights_shape_the_first_choice() -> None:
    cands = [_c("heavy", weight=9), _c("light", weight=1)]
    firsts = Counter(_names(cands, 1, seed=s)[0] for s in range(2000))
    assert 0.85 < firsts["heavy"] / 2000 < 0.95


def test_zero_weight_is_standby() -> None:
    assert _names([_c("standby", weight=0), _c("main")], 2) == ["main", "standby"]


def test_unavailable_backends_are_skipped_and_attempts_capped() -> None:
    assert _names([_c("a"), _c("b"), _c("c", 1)], 5, down={"a"})[:2] in (["b", "c"],)
    assert len(_names([_c("a")], 3)) == 3  # one backend may be retried
    assert _names([_c("a"), _c("b")], 1) in (["a"], ["b"])


def test_panic_when_everything_is_down() -> None:
    assert sorted(_names([_c("a"), _c("b")], 2, down={"a", "b"})) == ["a", "b"]


@given(
    st.lists(st.tuples(st.integers(0, 3), st.floats(0, 10)), min_size=1, max_size=8),
    st.integers(1, 10),
    st.integers(0, 1000),
)
def test_plan_never_exceeds_attempts_and_respects_priority(
    specs: list[tuple[int, float]], n: int, seed: int
) -> None:
    cands = [_c(f"b{i}", p, w) for i, (p, w) in enumerate(specs)]
    order = list(attempts(cands, max_attempts=n, available=lambda _: True, rng=random.Random(seed)))
    assert len(order) == min(n, len(order)) <= n
    first_round = order[: len(cands)]
    assert [c.priority for c in first_round] == sorted(c.priority for c in first_round)


def test_cooldown_after_consecutive_failures() -> None:
    h = BackendHealth()
    od = OutlierDetection(consecutive_failures=3, cooldown_s=10)
    assert not h.failure("a", od, 0.0) and not h.failure("a", od, 0.1)
    assert h.failure("a", od, 0.2)
    assert not h.available("a", 5.0) and h.cooling("a", 5.0)
    assert h.available("a", 10.3)


def test_success_resets_the_count() -> None:
    h = BackendHealth()
    od = OutlierDetection(consecutive_failures=2, cooldown_s=10)
    h.failure("a", od, 0)
    h.success("a")
    assert not h.failure("a", od, 1)
    assert h.available("a", 1)


def test_retry_after_blocks_until_then() -> None:
    h = BackendHealth()
    h.retry_after("a", 30.0)
    assert not h.available("a", 29.9) and h.available("a", 30.0)
