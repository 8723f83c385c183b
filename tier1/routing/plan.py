"""The attempt plan of one request (pure): priority groups in order, weighted random
order within a group, unavailable backends skipped, at most `attempts` tries.

It is a generator consulted attempt by attempt, so a failure recorded during this very
request (a cooldown, a Retry-After) already shapes the next pick. When every backend of
the route is unavailable the plan ignores health once ("panic"), as Envoy does, rather
than failing a route outright for a whole cooldown period.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Candidate(Generic[T]):
    __slots__ = ("item", "name", "priority", "weight")

    def __init__(self, item: T, name: str, priority: int, weight: float) -> None:
        self.item, self.name, self.priority, self.weight = item, name, priority, weight


def weighted_order(cands: Sequence[Candidate[T]], rng: random.Random) -> list[Candidate[T]]:
    """Weighted random permutation (Efraimidis–Spirakis keys); weight 0 goes last."""
    keyed = []
    for c in cands:
        key = rng.random() ** (1.0 / c.weight) if c.weight > 0 else -1.0 - rng.random()
        keyed.append((key, c))
    keyed.sort(key=lambda kc: -kc[0])
    return [c for _, c in keyed]


def attempts(
    candidates: Sequence[Candidate[T]],
    *,
    max_attempts: int,
    available: Callable[[str], bool],
    rng: random.Random,
) -> Iterator[Candidate[T]]:
    if len(candidates) == 1:  # the common route: one backend, maybe retried
        only = candidates[0]
        for n in range(max_attempts):
            if n and not available(only.name):  # a retry, but it is cooling down now
                return
            yield only
        return
    groups: dict[int, list[Candidate[T]]] = {}
    for c in candidates:
        groups.setdefault(c.priority, []).append(c)
    order = [c for prio in sorted(groups) for c in weighted_order(groups[prio], rng)]
    if not order:
        return
    made = 0
    panic = not any(available(c.name) for c in order)
    while made < max_attempts:
        progressed = False
        for c in order:
            if made >= max_attempts:
                return
            if panic or available(c.name):
                made += 1
                progressed = True
                yield c
        if not progressed:
            return
        panic = False
