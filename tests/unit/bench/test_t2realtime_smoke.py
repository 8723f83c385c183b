"""bench.tier2_bench.realtime: config scaling, response parsing, summaries, and a tiny run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from bench.tier2_bench import realtime
from bench.tier2_bench.realtime import pool_resource, ranking, summarize
from bench.tier2_bench.realtime_client import Sample, Window, parse_response
from common import jsonutil
from common.config import ConfigSet, parse_resource
from control.compile import compile_tier2


def _params(doc: dict[str, Any], type_: str) -> dict[str, Any]:
    plugins = doc["spec"]["scheduler"]["plugins"]
    return dict(next(p["parameters"] for p in plugins if p["type"] == type_))


@pytest.mark.parametrize("policy", realtime.POLICIES)
def test_every_policy_compiles_to_a_pool_tier2_accepts(policy: str) -> None:
    doc = pool_resource(
        policy, ["127.0.0.1:1", "127.0.0.1:2"], "127.0.0.1:3", speed=4, scrape_s=0.2
    )
    snap = compile_tier2(ConfigSet.of([parse_resource(doc)]))["bench"]
    assert snap.pool.spec.scheduler.name == policy
    assert snap.pool.spec.scrape_interval_s == pytest.approx(0.05)


def test_strata_seconds_are_divided_by_the_speed() -> None:
    doc = pool_resource("strata", ["127.0.0.1:1"], "127.0.0.1:3", speed=4, scrape_s=0.2)
    picker = _params(doc, "strata-picker")
    assert picker["t_max_s"] == pytest.approx(0.25)  # 1 s of model time
    assert picker["overhead_s"] == pytest.approx(0.005)
    assert picker["stale_after_s"] == pytest.approx(0.6 / 4)  # 3 model scrapes
    assert _params(doc, "ledger")["default_prefill_rate"] == pytest.approx(32000)
    assert _params(doc, "prefix-index")["record_response"] is True


def test_random_is_a_weighted_random_picker_without_scorers() -> None:
    doc = pool_resource("random", ["127.0.0.1:1"], "127.0.0.1:3", speed=2, scrape_s=0.1)
    types = [p["type"] for p in doc["spec"]["scheduler"]["plugins"]]
    assert types == ["serves-model-filter", "healthy-filter", "weighted-random-picker"]


def _chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "status", "events"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + _chunked(b'data: {"a":1}\n\n', b'data: {"b":2}\n\ndata: [DONE]\n\n'),
            200,
            [b'{"a":1}', b'{"b":2}', b"[DONE]"],
        ),
        (b"HTTP/1.1 200 OK\r\n\r\ndata: x\n\n: comment\n\n", 200, [b"x"]),
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}", 503, []),
        (b"", 0, []),
    ],
)
def test_parse_response(raw: bytes, status: int, events: list[bytes]) -> None:
    assert parse_response(raw) == (status, events)


def test_summarize_measures_only_the_window_and_censors_the_unserved() -> None:
    w = Window(10.0, 20.0, 30.0)
    samples = [
        Sample(5.0, first_token=6.0, finish=7.0, token_times=[6.0, 6.1]),  # warm-up
        Sample(12.0, first_token=13.0, finish=14.0, token_times=[13.0, 13.1, 13.3]),
        Sample(15.0, first_token=15.5, finish=16.0, token_times=[15.5, 15.6]),
        Sample(18.0),  # never served: TTFT censored at the end, 30 - 18
        Sample(19.0, error="HTTP 503"),
    ]
    samples[1].prompt_tokens, samples[1].cached_tokens = 100, 75
    samples[2].prompt_tokens, samples[2].cached_tokens = 100, 25
    out = summarize(samples, w)
    assert out["requests"] == 4
    assert (out["errors"], out["unserved"]) == (1, 1)
    assert out["ttft_p50_s"] == pytest.approx(1.0)  # of 0.5, 1.0, 12.0
    assert out["prefix_hit_rate"] == pytest.approx(0.5)
    assert out["output_tps"] == pytest.approx(5 / 10)
    assert out["itl_p99_ms"] == pytest.approx(200, rel=0.1)


def test_ranking_names_the_order_worst_first() -> None:
    rows = {"random": {"ttft_p90_s": 2.0}, "gie-default": {"ttft_p90_s": 1.0}}
    assert ranking({**rows, "strata": {"ttft_p90_s": 0.5}})["matches"] is True
    flipped = ranking({**rows, "strata": {"ttft_p90_s": 1.5}})
    assert flipped["matches"] is False
    assert flipped["observed"] == ["random", "strata", "gie-default"]


@pytest.mark.slow
def test_a_tiny_real_run_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "rt"
    argv = ["--policies", "random", "--pods", "2", "--speed", "20", "--rate", "0.3"]
    argv += ["--duration-s", "4", "--tail-s", "3", "--out", str(out)]
    assert realtime.main(argv) == 0
    doc = jsonutil.loads(out.with_suffix(".json").read_bytes())
    row = doc["results"]["random"]
    assert row["sent"] > 0 and row["errors"] == 0
    assert not math.isnan(row["cpu"]["pod_ttft_mean_s"])
    assert "| random |" in out.with_suffix(".md").read_text()
