"""Admission by priority under saturation, on a FakeClock: nothing here sleeps."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.clock import FakeClock
from common.errors import BadRequest
from tier2.admission import Admission, Overflow, Shed, parse_priority
from tier2.scheduling.types import Priority


class Pool:
    """A saturation switch the test flips."""

    def __init__(self, saturated: bool = False) -> None:
        self.full = saturated

    def __call__(self, now: float) -> bool:
        return self.full


def _admission(
    pool: Pool, clock: FakeClock, max_queue: int = 4, timeout_s: float = 5.0
) -> Admission:
    return Admission(clock, pool, max_queue=max_queue, timeout_s=timeout_s)


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, Priority.STANDARD),
        ("", Priority.STANDARD),
        ("critical", Priority.CRITICAL),
        ("Standard", Priority.STANDARD),
        (" sheddable ", Priority.SHEDDABLE),
    ],
)
def test_priority_header_values(value: str | None, expected: Priority) -> None:
    assert parse_priority(value) is expected


def test_unknown_priority_is_a_400_naming_the_header() -> None:
    with pytest.raises(BadRequest) as e:
        parse_priority("urgent")
    assert e.value.param == "x-strata-priority"


@pytest.mark.parametrize("priority", list(Priority))
async def test_every_priority_passes_when_the_pool_has_room(priority: Priority) -> None:
    assert await _admission(Pool(False), FakeClock()).admit(priority) is False


async def test_saturated_pool_sheds_sheddable_and_dispatches_critical() -> None:
    adm = _admission(Pool(True), FakeClock())
    with pytest.raises(Shed) as e:
        await adm.admit(Priority.SHEDDABLE)
    assert e.value.status == 429
    assert await adm.admit(Priority.CRITICAL) is False
    assert adm.queued() == 0


async def test_standard_waits_until_capacity_frees_then_goes() -> None:
    pool, clock = Pool(True), FakeClock()
    adm = _admission(pool, clock)
    waiter = asyncio.create_task(adm.admit(Priority.STANDARD))
    await _settle()
    assert not waiter.done() and adm.queued(Priority.STANDARD) == 1
    adm.poke()  # still saturated: stays
    await _settle()
    assert not waiter.done()
    pool.full = False
    adm.poke()
    assert await waiter is True  # it waited, so the caller owes dispatched()
    assert adm.queued() == 0


async def test_waiters_go_one_at_a_time_in_arrival_order() -> None:
    pool, clock = Pool(True), FakeClock()
    adm = _admission(pool, clock)
    order: list[int] = []

    async def request(n: int) -> None:
        await adm.admit(Priority.STANDARD)
        order.append(n)

    tasks = [asyncio.create_task(request(n)) for n in range(3)]
    await _settle()
    pool.full = False
    adm.poke()
    await _settle()
    assert order == [0]  # the next waits until the first has picked
    adm.dispatched()
    await _settle()
    assert order == [0, 1]
    adm.dispatched()
    await _settle()
    adm.dispatched()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]


async def test_newcomer_does_not_overtake_waiters() -> None:
    pool, clock = Pool(True), FakeClock()
    adm = _admission(pool, clock)
    first = asyncio.create_task(adm.admit(Priority.STANDARD))
    await _settle()
    pool.full = False  # room again, but someone was waiting first
    second = asyncio.create_task(adm.admit(Priority.STANDARD))
    await _settle()
    assert first.done() and not second.done()
    adm.dispatched()
    await _settle()
    assert second.done()


async def test_full_queue_overflows_with_503() -> None:
    adm = _admission(Pool(True), FakeClock(), max_queue=2)
    waiting = [asyncio.create_task(adm.admit(Priority.STANDARD)) for _ in range(2)]
    await _settle()
    with pytest.raises(Overflow) as e:
        await adm.admit(Priority.STANDARD)
    assert e.value.status == 503 and "queue is full" in str(e.value)
    for t in waiting:
        t.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert adm.queued() == 0


async def test_wait_past_the_deadline_overflows() -> None:
    clock = FakeClock()
    adm = _admission(Pool(True), clock, timeout_s=5.0)
    early = asyncio.create_task(adm.admit(Priority.STANDARD))
    await _settle()
    clock.advance(3.0)
    late = asyncio.create_task(adm.admit(Priority.STANDARD))
    await _settle()
    clock.advance(2.0)  # the first has waited 5 s, the second 2 s
    adm.poke()
    await _settle()
    with pytest.raises(Overflow) as e:
        await early
    assert "stayed saturated for 5s" in str(e.value)
    assert not late.done() and adm.queued() == 1
    clock.advance(3.0)
    adm.poke()
    with pytest.raises(Overflow):
        await late


async def test_client_leaving_while_queued_frees_its_place() -> None:
    pool = Pool(True)
    adm = _admission(pool, FakeClock(), max_queue=1)
    waiter = asyncio.create_task(adm.admit(Priority.STANDARD))
    await _settle()
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert adm.queued() == 0
    again = asyncio.create_task(adm.admit(Priority.STANDARD))  # the bound has room again
    await _settle()
    assert adm.queued() == 1
    again.cancel()
    await asyncio.gather(again, return_exceptions=True)


async def test_released_waiter_that_leaves_hands_its_turn_on() -> None:
    pool = Pool(True)
    adm = _admission(pool, FakeClock())
    first = asyncio.create_task(adm.admit(Priority.STANDARD))
    second = asyncio.create_task(adm.admit(Priority.STANDARD))
    await _settle()
    pool.full = False
    adm.poke()  # releases `first`, whose task has not resumed yet
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await _settle()
    assert second.done() and second.result() is True


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.sampled_from(["arrive", "full", "room", "tick", "dispatched", "leave"]), max_size=40
    )
)
def test_queue_never_exceeds_its_bound_and_releases_one_at_a_time(ops: list[str]) -> None:
    async def scenario() -> None:
        pool, clock = Pool(True), FakeClock()
        adm = _admission(pool, clock, max_queue=3, timeout_s=2.0)
        tasks: list[asyncio.Task[bool]] = []
        for op in ops:
            if op == "arrive":
                tasks.append(asyncio.create_task(adm.admit(Priority.STANDARD)))
            elif op in ("full", "room"):
                pool.full = op == "full"
                adm.poke()
            elif op == "tick":
                clock.advance(1.0)
                adm.poke()
            elif op == "dispatched":
                adm.dispatched()
            elif op == "leave" and tasks:
                tasks[0].cancel()
            await _settle()
            assert adm.queued() <= 3
            assert adm._releasing <= 1
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
