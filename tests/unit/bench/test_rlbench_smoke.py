"""`strata bench ratelimit`: its pure arithmetic (table and property tests) and one
smoke run of the whole command with tiny durations (real processes; marked slow)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.ratelimit_bench.config import (
    accuracy_docs,
    size_limits,
    stable_window,
    tier1_wire,
    usage_cost,
)
from bench.ratelimit_bench.summary import (
    Histogram,
    accuracy_row,
    histogram,
    merge,
    milestones,
    not_worse,
    samples,
    token_estimate,
)
from common.config.ratelimit import parse_window

REPO = Path(__file__).resolve().parents[3]

METRICS = """\
# TYPE strata_ratelimit_reconcile_lag_seconds histogram
strata_ratelimit_reconcile_lag_seconds_bucket{le="0.1"} 2.0
strata_ratelimit_reconcile_lag_seconds_bucket{le="0.2"} 6.0
strata_ratelimit_reconcile_lag_seconds_bucket{le="+Inf"} 8.0
strata_ratelimit_reconcile_lag_seconds_count 8.0
strata_ratelimit_reconcile_lag_seconds_sum 1.2
"""


def test_usage_cost_weights_prompt_and_completion() -> None:
    assert usage_cost({"prompt_tokens": 30, "completion_tokens": 10}, "input + 4*output") == 70
    assert usage_cost({"prompt_tokens": 30, "completion_tokens": 10}, "total") == 40


@pytest.mark.parametrize(
    ("admitted", "overshoot", "utilisation"),
    [(1000, 0.0, 100.0), (1010, 1.0, 101.0), (950, 0.0, 95.0)],
)
def test_accuracy_row(admitted: int, overshoot: float, utilisation: float) -> None:
    row = accuracy_row("requests", 1000, admitted)
    assert row["overshoot_pct"] == pytest.approx(overshoot)
    assert row["utilisation_pct"] == pytest.approx(utilisation)


def test_token_estimate_is_what_tier1_reserves() -> None:
    # 166 bytes -> 42 prompt tokens; 64 output tokens at weight 4
    assert token_estimate(166, 64, {"input": 1.0, "output": 4.0}) == 42 + 256


def test_histogram_from_metrics_text_and_merge() -> None:
    h = histogram(samples(METRICS), "strata_ratelimit_reconcile_lag_seconds")
    assert h is not None
    assert h.count == 8.0
    assert h.mean == pytest.approx(0.15)
    assert h.quantile(0.5) == pytest.approx(0.15)  # rank 4 halfway through (0.1, 0.2]
    assert h.quantile(0.99) == 0.2  # in the +Inf bucket: the highest finite bound
    both = merge([h, h])
    assert both is not None and both.count == 16 and both.quantile(0.5) == h.quantile(0.5)


@given(
    st.lists(st.integers(0, 50), min_size=1, max_size=6),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_histogram_quantile_is_monotone_and_within_bounds(
    counts: list[int], q1: float, q2: float
) -> None:
    bounds = [0.01 * 2**i for i in range(len(counts))] + [math.inf]
    cums, total = [], 0
    for c in [*counts, 3]:
        total += c
        cums.append(float(total))
    h = Histogram(tuple(zip(bounds, cums, strict=True)), float(total), 0.0)
    lo, hi = sorted((q1, q2))
    assert 0.0 <= h.quantile(lo) <= h.quantile(hi) <= bounds[-2]


@pytest.mark.parametrize(
    ("added", "noise", "higher_is_worse", "outcome"),
    [
        ([0.02, 0.04], [0.01, -0.01], True, "PASS"),  # under the 0.05 threshold
        ([0.3, 0.4], [0.5, -0.6], True, "PASS"),  # hidden in the machine's noise
        ([0.3, 0.4], [0.01, -0.02], True, "FAIL"),
        ([-0.3, -0.4], [0.01, -0.02], True, "PASS"),  # better is never a failure
    ],
)
def test_not_worse_compares_the_effect_with_the_noise(
    added: list[float], noise: list[float], higher_is_worse: bool, outcome: str
) -> None:
    v = not_worse("x", added, noise, center=0.0, threshold=0.05, higher_is_worse=higher_is_worse)
    assert v.outcome == outcome


def test_not_worse_on_ratios_counts_a_drop_only() -> None:
    drop = not_worse(
        "r", [0.8, 0.82], [0.97, 1.02], center=1.0, threshold=0.0, higher_is_worse=False
    )
    assert (drop.outcome, round(drop.value, 2)) == ("FAIL", 0.19)
    gain = not_worse(
        "r", [1.2, 1.3], [0.97, 1.02], center=1.0, threshold=0.0, higher_is_worse=False
    )
    assert gain.outcome == "PASS"


def test_milestones() -> None:
    timeline = [(0.0, 0, 0), (1.0, 50, 0), (2.0, 99, 3), (3.0, 100, 40), (4.0, 100, 90)]
    m = milestones(timeline, 100)
    assert m == {"t99_s": 2.0, "last_admit_s": 3.0, "first_429_s": 2.0, "used_at_first_429": 0.99}


@given(st.floats(1.0, 1e5), st.floats(1.0, 600.0))
def test_size_limits_spend_both_budgets_together(rate: float, duration: float) -> None:
    s = size_limits(rate, duration, cost=70.0)
    assert 1 <= s.requests <= max(1, rate * duration * 2 / 3)
    assert s.tokens == s.requests * 70


@given(st.floats(1e9, 2e9), st.floats(1.0, 3600.0))
def test_stable_window_does_not_roll_during_the_run(now: float, duration: float) -> None:
    text = stable_window(now, duration)
    length = parse_window(text)
    assert isinstance(length, int) and text.endswith("h")
    end = (now // length + 1) * length
    assert end - now > duration


def test_accuracy_snapshot_compiles_with_one_policy_on_one_route() -> None:
    wire = tier1_wire(accuracy_docs("http://127.0.0.1:9/v1", "1h", 100, 7000), 1)
    [policy] = wire["rate_limit_policies"]
    assert policy["spec"]["limits"][0] | {"window": "1h"} == policy["spec"]["limits"][0]
    assert [r["spec"]["rate_limit_policies"] for r in wire["routes"]] == [[policy["name"]]]


@pytest.mark.slow
def test_smoke_run_of_both_benchmarks(tmp_path: Path) -> None:
    """Every stage runs and writes its record; the limits hold even in a 2 s run."""
    cmd = [
        sys.executable, "-m", "bench.ratelimit_bench", "--out", str(tmp_path),
        "--rounds", "1", "--phase-s", "0.5", "--warmup-s", "0.2", "--micro-requests", "300",
        "--rate", "40", "--concurrency", "8", "--bursty-s", "0",
        "--duration-s", "2", "--calib-rps", "60", "--workers", "1",
    ]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=90, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "## Targets" in run.stdout
    record = orjson.loads((tmp_path / "ratelimit.json").read_bytes())
    assert (tmp_path / "ratelimit.md").read_text() in run.stdout
    micro = record["micro"]
    assert micro["measured_requests"] == 300 and micro["global_quota"]["p50_us"] > 0
    e2e = record["e2e"]
    assert e2e["limited_requests_allowed"] > 0  # the policy was applied to m-limited
    assert e2e["in_situ"]["admit"]["limited"]["n"] > 0  # the probe timed the hook in tier1
    acc = record["accuracy"]
    requests, tokens = acc["rows"]
    assert acc["client"]["2xx"] == acc["upstream_received"]["200"]
    assert requests["admitted"] <= requests["limit"] + requests["bound"]
    assert tokens["admitted"] <= tokens["limit"] + tokens["bound"]
    assert acc["client"]["429"] > 0  # 60 req/s sizing: the budget runs out in 2 s
