"""The tier1 benchmark's pure helpers: percentiles, /proc parsing, SSE counting, verdicts."""

from __future__ import annotations

import math

import pytest

from bench.tier1_bench import report
from bench.tier1_bench.stats import (
    count_events,
    cpu_busy_from_proc_stat,
    cpu_ticks_from_stat,
    percentile,
    ppid_from_stat,
    ratio,
    rss_kib_from_status,
    spread,
    verdict,
)


def test_percentile_interpolates_like_numpy_linear() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order does not matter
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_spread_ignores_nan_and_reports_median_min_max() -> None:
    s = spread([3.0, math.nan, 1.0, 10.0])
    assert (s.median, s.low, s.high, s.n) == (3.0, 1.0, 10.0, 3)
    assert math.isnan(spread([math.nan]).median)


def test_cpu_ticks_from_a_stat_line_whose_comm_has_spaces_and_parens() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    line = "4242 (python (x) y) S 4200 4242 4242 0 -1 4194560 1200 0 3 0 1234 567 8 9 20 0 3 0\n"
    assert cpu_ticks_from_stat(line) == 1234 + 567
    assert ppid_from_stat(line) == 4200
    with pytest.raises(ValueError):
        cpu_ticks_from_stat("garbage")
    with pytest.raises(ValueError):
        cpu_ticks_from_stat("1 (short) S 1 2")


def test_rss_and_per_cpu_busy_from_proc_text() -> None:
    assert rss_kib_from_status("Name:\tpython\nVmRSS:\t   40960 kB\nThreads:\t3\n") == 40960
    assert rss_kib_from_status("Name:\tzombie\n") == 0
    stat = (
        "cpu  10 0 10 100 0 0 0 0 0 0\n"
        "cpu0 5 1 4 50 10 0 0 2 0 0\n"
        "cpu1 5 0 5 50 0 0 0 0 0 0\n"
        "intr 12345\n"
    )
    # busy = user+nice+system+irq+softirq+steal; idle and iowait are not busy
    assert cpu_busy_from_proc_stat(stat) == {0: (12, 72), 1: (10, 60)}


def test_count_events_counts_a_marker_split_across_reads_once() -> None:
    stream = b"data: {}\n\n" * 3 + b"data: [DONE]\n\n"
    for cut in range(len(stream) + 1):
        n1, tail = count_events(b"", stream[:cut])
        n2, _ = count_events(tail, stream[cut:])
        assert n1 + n2 == 4, cut
    # byte by byte, as the slowest network would deliver it
    total, tail = 0, b""
    for i in range(len(stream)):
        n, tail = count_events(tail, stream[i : i + 1])
        total += n
    assert total == 4


def test_ratio_and_verdicts() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))
    assert verdict("x", 0.5, ">=", 0.5).outcome == "PASS"
    assert verdict("x", 0.49, ">=", 0.5).outcome == "FAIL"
    assert verdict("x", 1.5, "<=", 1.5).outcome == "PASS"
    assert verdict("x", 1.51, "<=", 1.5).outcome == "FAIL"
    skipped = verdict("x", math.nan, ">=", 25.0, note="LiteLLM skipped")
    assert (skipped.outcome, skipped.note) == ("SKIP", "LiteLLM skipped")
    assert skipped.as_dict()["value"] is None


def _round(tier1_rps: float, bare_rps: float, litellm_rps: float, t1_p50: float) -> report.Round:
    def closed(rps: float, events: float = 0.0) -> dict[str, float]:
        return {"per_s": rps, "sut_cpu_us_per": 1e6 / rps, "sut_busy": 1.0, "events_per_s": events}

    def opened(p50: float, p99: float) -> dict[str, float | bool]:
        return {"p50_ms": p50, "p99_ms": p99, "overloaded": False, "errors": 0}

    return {
        "nonstream": {
            "direct": closed(5000),
            "tier1": closed(tier1_rps),
            "bare": closed(bare_rps),
            "litellm": closed(litellm_rps),
        },
        "stream": {
            "direct": closed(1000, 53000),
            "tier1": closed(600, 31800),
            "bare": closed(900, 47700),
            "litellm": closed(10, 530),
        },
        "open": {
            "200": {
                "direct": opened(1.0, 3.0),
                "tier1": opened(t1_p50, 5.0),
                "bare": opened(2.0, 4.0),
            },
            "40": {"direct": opened(1.5, 4.0), "litellm": {**opened(20.0, 40.0)}},
        },
    }


def test_summary_ratios_and_verdicts_from_rounds() -> None:
    targets = ["direct", "tier1", "bare", "litellm"]
    rounds = [_round(2000, 3000, 64, 2.0), _round(1800, 3600, 60, 2.8), _round(2100, 3500, 70, 2.4)]
    summary = report.summarize(rounds, targets, 200.0)
    assert summary["tier1"]["open"]["added_p50_ms"].median == pytest.approx(1.4)
    assert summary["tier1"]["open"]["added_p99_ms"].median == pytest.approx(2.0)
    # LiteLLM was measured at the fallback rate, against direct at that rate
    assert summary["litellm"]["open"]["rates"] == [40.0]
    assert summary["litellm"]["open"]["added_p50_ms"].median == pytest.approx(18.5)
    rat = report.ratios(rounds, targets)
    # per-round ratios first (2000/3000, 1800/3600, 2100/3500), then their median
    assert rat["tier1_rps_vs_bare"].median == pytest.approx(0.6)
    assert rat["tier1_rps_vs_bare"].low == pytest.approx(0.5)
    assert rat["tier1_chunks_vs_bare"].median == pytest.approx(31800 / 47700)
    out = {v.name: v.outcome for v in report.verdicts(summary, rat, 200.0, None)}
    assert list(out.values()) == ["PASS", "PASS", "PASS", "PASS", "PASS"]
    slow = [_round(1000, 3000, 30, 3.0)] * 3  # 0.33× bare, 33× LiteLLM, +2 ms p50
    s2 = report.summarize(slow, targets, 200.0)
    v2 = report.verdicts(s2, report.ratios(slow, targets), 200.0, None)
    assert [v.outcome for v in v2] == ["FAIL", "PASS", "FAIL", "PASS", "PASS"]


def test_litellm_skipped_gives_skip_not_fail() -> None:
    targets = ["direct", "tier1", "bare"]
    rounds = [_round(2000, 3000, 64, 2.0)]
    summary = report.summarize(rounds, targets, 200.0)
    v = report.verdicts(summary, report.ratios(rounds, targets), 200.0, "--skip-litellm")
    by_name = {x.name: x for x in v}
    litellm = by_name["tier1 requests/s ≥ 25× LiteLLM"]
    assert litellm.outcome == "SKIP"
    assert "--skip-litellm" in litellm.note
    assert report.fmt(spread([1.0, 2.0, 3.0]), 1) == "2.0 (1.0–3.0)"
    assert report.fmt(spread([0.5]), 2, sign=True) == "+0.50"


class _FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _chunked(events: list[bytes], split: int) -> bytes:
    """An HTTP/1.1 chunked answer whose chunks cut across events every ``split`` bytes."""
    body = b"".join(events)
    parts = [body[i : i + split] for i in range(0, len(body), split)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + framed
    )


@pytest.mark.parametrize("split", [1, 7, 64, 100_000])
@pytest.mark.parametrize("read", [1, 5, 333, 100_000])
def test_raw_client_parses_framing_in_any_split(split: int, read: int) -> None:
    import asyncio

    from bench.tier1_bench.rawclient import Tally, Worker, encode_request

    host, port, request = encode_request(
        "http://127.0.0.1:9/v1/chat/completions", {"A": "b"}, b"{}"
    )
    assert (host, port) == ("127.0.0.1", 9)
    assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
    assert request.endswith(b"Content-Length: 2\r\nA: b\r\n\r\n{}")
    loop = asyncio.new_event_loop()
    try:
        tally = Tally()
        sends = iter([True, True, False])  # keep going for two answers, stop after the third
        worker = Worker(request, tally, lambda: next(sends), loop.create_future())
        transport = _FakeTransport()
        worker.connection_made(transport)  # type: ignore[arg-type]
        events = [b'data: {"n": %d}\n\n' % i for i in range(50)] + [b"data: [DONE]\n\n"]
        json = b'{"ok": true}'
        answers = [
            _chunked(events, split),
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX: y\r\n\r\n%s" % (len(json), json),
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}",
        ]
        for answer in answers:
            for i in range(0, len(answer), read):
                worker.data_received(answer[i : i + read])
        assert (tally.ok, tally.errors, tally.events) == (2, 1, 51)
        assert tally.first_error == "HTTP 503"
        assert len(transport.writes) == 3 and transport.closed and worker.done.done()
    finally:
        loop.close()
