"""Fault specs parse strictly; the injector is seeded and counts requests."""

from __future__ import annotations

import random

import pytest

from bench.vllmsim.faults import FaultInjector, FaultSpec


def test_parse_and_merge() -> None:
    spec = FaultSpec.parse("error_rate=0.25, spike_rate=1,spike_ms=300,crash_after=7")
    assert spec == FaultSpec(error_rate=0.25, spike_rate=1.0, spike_ms=300.0, crash_after=7)
    assert spec.merged({"error_rate": 0}).error_rate == 0.0
    assert FaultSpec.parse("") == FaultSpec()


@pytest.mark.parametrize("bad", ["nope=1", "error_rate=2", "error_rate=x", "error_rate"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        FaultSpec.parse(bad)


def test_injector_rates_and_crash() -> None:
    inj = FaultInjector(FaultSpec(error_rate=0.5), random.Random(1))
    errors = sum(inj.decide().error for _ in range(2000))
    assert 850 < errors < 1150
    crash = FaultInjector(FaultSpec(crash_after=3), random.Random(1))
    assert [crash.decide().crash for _ in range(5)] == [False, False, False, True, True]
    clean = FaultInjector(FaultSpec(), random.Random(1)).decide()
    assert not (clean.error or clean.hang or clean.crash or clean.spike_s or clean.stall_s)
