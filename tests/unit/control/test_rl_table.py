"""QuotaTable, the quota service's counters: the limit invariant under any interleaving
of Syncs from several holders, reclaiming expired allotments, window expiry,
checkpoint bookkeeping (dirty/restore) and the top-keys view."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.quota.protocol import SyncEntry
from common.quota.table import QuotaTable

LEASE_S = 1.0
WALL = 1_767_225_600.0
EPS = 1e-6


def entry(
    key: str = "k",
    *,
    limit: float = 100,
    end: float = WALL + 3600,
    d: float = 0,
    w: float = 0,
    persist: int = 0,
) -> SyncEntry:
    return {"k": key, "l": limit, "e": end, "d": d, "w": w, "p": persist}


def live_allotted(table: QuotaTable, key: str, now: float) -> float:
    return sum(a for a, until in table.counters[key].held.values() if until > now)


# -- table tests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consumed", "others_want", "want", "granted", "remaining"),
    [
        (0, 0, 30, 30, 70),  # plenty left
        (0, 80, 30, 20, 0),  # capped by what the other holder holds
        (90, 0, 30, 10, 0),  # capped by what was consumed
        (100, 0, 30, 0, 0),  # nothing left
        (0, 0, 0, 0, 100),  # asking for nothing returns everything
    ],
)
def test_grant_is_what_is_wanted_capped_by_what_is_left(
    consumed: float, others_want: float, want: float, granted: float, remaining: float
) -> None:
    table = QuotaTable(lease_s=LEASE_S)
    table.sync("other", [entry(w=others_want)], 0.0, WALL)
    if consumed:
        table.sync("spender", [entry(d=consumed)], 0.0, WALL)
    (grant,), _ = table.sync("me", [entry(w=want)], 0.0, WALL)
    assert grant == {"k": "k", "a": granted, "r": remaining, "t": LEASE_S}


def test_usage_accumulates_and_newest_limit_wins() -> None:
    table = QuotaTable()
    for _ in range(3):
        table.sync("h", [entry(d=10)], 0.0, WALL)
    (grant,), _ = table.sync("h", [entry(limit=50, w=0)], 0.0, WALL)
    assert table.counters["k"].consumed == 30
    assert grant["r"] == 20


def test_stats_count_units_granted_and_returned() -> None:
    table = QuotaTable()
    _, grew = table.sync("h", [entry(w=40)], 0.0, WALL)
    _, shrank = table.sync("h", [entry(w=15)], 0.1, WALL)
    assert (grew.granted, grew.returned) == (40, 0)
    assert (shrank.granted, shrank.returned) == (0, 25)


def test_a_sync_for_an_ended_window_grants_nothing_and_keeps_nothing() -> None:
    table = QuotaTable()
    (grant,), _ = table.sync("h", [entry(end=WALL - 1, d=5, w=10)], 0.0, WALL)
    assert (grant["a"], grant["r"]) == (0, 0)
    assert table.counters == {}


def test_expire_drops_ended_windows_and_names_the_persisted_ones() -> None:
    table = QuotaTable()
    table.sync(
        "h",
        [
            entry("minute", end=WALL + 60, d=1),
            entry("hour", end=WALL + 3600, d=1, persist=1),
            entry("ended-soon", end=WALL + 10, d=1, persist=1),
        ],
        0.0,
        WALL,
    )
    assert table.expire(WALL + 9) == []
    assert table.expire(WALL + 60) == ["ended-soon"]
    assert set(table.counters) == {"hour"}
    assert table.expire(WALL + 3600) == ["hour"]
    assert table.counters == {}


def test_dirty_lists_changed_persisted_counters_once() -> None:
    table = QuotaTable()
    table.sync("h", [entry("long", d=3, persist=1), entry("short", d=3)], 0.0, WALL)
    table.sync("h", [entry("asks-only", w=5, persist=1)], 0.0, WALL)
    assert [k for k, _ in table.dirty()] == ["long"]
    assert table.dirty() == []
    table.sync("h", [entry("long", d=1, persist=1)], 0.0, WALL)
    assert [(k, c.consumed) for k, c in table.dirty()] == [("long", 4)]


def test_restore_keeps_the_larger_count() -> None:
    table = QuotaTable()
    table.restore("k", 40, 100, WALL + 3600)
    table.sync("h", [entry(d=5, persist=1)], 0.0, WALL)
    table.restore("k", 30, 100, WALL + 3600)  # an older checkpoint: ignored
    assert table.counters["k"].consumed == 45
    table.restore("k", 60, 100, WALL + 3600)  # another replica counted further
    assert table.counters["k"].consumed == 60


def test_active_holders_forget_silent_ones() -> None:
    table = QuotaTable(holder_ttl_s=10)
    table.sync("a", [], 0.0, WALL)
    table.sync("b", [], 5.0, WALL)
    assert table.active_holders(9.0) == 2
    assert table.active_holders(12.0) == 1


def test_top_lists_the_keys_closest_to_their_limit() -> None:
    table = QuotaTable()
    table.sync("h", [entry("a", d=10), entry("b", d=90), entry("c", d=50)], 0.0, WALL)
    assert [(k, left) for k, _, left in table.top(2, 0.0)] == [("b", 10), ("c", 50)]


# -- properties -----------------------------------------------------------------------------


@dataclass
class Holder:
    allotment: float = 0.0
    until: float = 0.0


step = st.tuples(
    st.integers(0, 2),  # holder
    st.integers(0, 1),  # key
    st.floats(0, 1.5 * LEASE_S),  # time passing before this Sync
    st.floats(0, 1),  # share of its live allotment the holder spent
    st.floats(0, 150),  # allotment wanted
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=60), limits=st.tuples(*[st.floats(1, 120)] * 2))
def test_consumed_plus_live_allotments_never_exceed_the_limit(
    steps: list[tuple[int, int, float, float, float]], limits: tuple[float, float]
) -> None:
    table = QuotaTable(lease_s=LEASE_S)
    holders = {(h, k): Holder() for h in range(3) for k in range(2)}
    now = 0.0
    for h, k, dt, spent, want in steps:
        now += dt
        mine = holders[(h, k)]
        # usage only comes out of an allotment the holder still trusts
        d = mine.allotment * spent if now < mine.until else 0.0
        key = f"key{k}"
        (grant,), _ = table.sync(f"h{h}", [entry(key, limit=limits[k], d=d, w=want)], now, WALL)
        mine.allotment, mine.until = grant["a"], now + grant["t"]
        assert 0 <= grant["a"] <= want + EPS
        assert grant["r"] >= -EPS
        for name in table.counters:
            c = table.counters[name]
            assert c.consumed + live_allotted(table, name, now) <= c.limit + EPS
        c = table.counters[key]
        assert grant["r"] == pytest.approx(c.limit - c.consumed - live_allotted(table, key, now))


@settings(max_examples=100, deadline=None)
@given(
    limit=st.floats(1, 1000),
    consumed_share=st.floats(0, 1),
    wait=st.floats(LEASE_S, 10 * LEASE_S),
    want=st.floats(0, 2000),
)
def test_an_expired_allotment_goes_back_to_everyone(
    limit: float, consumed_share: float, wait: float, want: float
) -> None:
    table = QuotaTable(lease_s=LEASE_S)
    consumed = limit * consumed_share
    table.sync("spender", [entry(limit=limit, d=consumed)], 0.0, WALL)
    (hog,), _ = table.sync("vanished", [entry(limit=limit, w=limit)], 0.0, WALL)
    assert hog["a"] == pytest.approx(limit - consumed)
    (before,), _ = table.sync("waiting", [entry(limit=limit, w=want)], LEASE_S - 1e-3, WALL)
    assert before["a"] <= EPS  # the vanished holder's allotment is still live
    (after,), _ = table.sync("waiting", [entry(limit=limit, w=want)], wait, WALL)
    assert after["a"] == pytest.approx(min(want, limit - consumed))
    assert "vanished" not in table.counters["k"].held


@settings(max_examples=100, deadline=None)
@given(
    ends=st.lists(st.floats(-100, 100), min_size=1, max_size=12),
    persist=st.lists(st.booleans(), min_size=12, max_size=12),
    at=st.floats(-50, 150),
)
def test_expire_keeps_exactly_the_open_windows(
    ends: list[float], persist: list[bool], at: float
) -> None:
    table = QuotaTable()
    entries = [
        entry(f"k{i}", end=WALL + 200 + end, d=1, persist=int(persist[i]))
        for i, end in enumerate(ends)
    ]
    table.sync("h", entries, 0.0, WALL)
    ended = table.expire(WALL + 200 + at)
    assert set(table.counters) == {e["k"] for e in entries if e["e"] > WALL + 200 + at}
    assert set(ended) == {e["k"] for e in entries if e["e"] <= WALL + 200 + at and e["p"]}
