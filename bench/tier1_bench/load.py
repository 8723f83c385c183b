"""The load generator: closed loop (max rate) and open loop (fixed rate), aiohttp + uvloop.

It runs in the driver process, pinned to CPU 1 with the fake upstream. It is kept cheap:
bodies are encoded once, SSE events are counted with ``bytes.count`` on raw reads (never
parsed), and latencies are plain floats. CPU time of the system under test is read from
/proc around the measured window only, after a warm-up with the same load.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.tier1_bench.stats import count_events, cpu_busy_from_proc_stat, percentile

REQUEST_TIMEOUT_S = 60.0
PROMPT = "Benchmark request: say something short about the weather in Lisbon today, please."


def request_body(model: str, *, stream: bool) -> bytes:
    """A ~180-byte OpenAI chat request (measurements.md §4 used 178 bytes)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


@dataclass
class Target:
    """One thing the load generator sends to; ``cpu`` reads its CPU seconds (None: none)."""

    name: str
    url: str
    headers: dict[str, str]
    model: str
    cpu: Callable[[], float] | None = None
    upstream_cpu: Callable[[], float] | None = None
    ours_cpu: Callable[[], tuple[float, float]] | None = None
    """CPU seconds of all our processes on (CPU 0, CPU 1), the driver excluded."""


@dataclass
class _Counts:
    ok: int = 0
    errors: int = 0
    events: int = 0
    first_error: str | None = None

    def error(self, what: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = what[:300]


@dataclass
class Window:
    """Counters and CPU clocks at one instant."""

    t: float
    ok: int
    errors: int
    events: int
    sut_cpu: float
    upstream_cpu: float
    self_cpu: float
    ours: tuple[float, float]
    cores: dict[int, tuple[int, int]]


def _cores() -> dict[int, tuple[int, int]]:
    try:
        with open("/proc/stat") as f:
            return cpu_busy_from_proc_stat(f.read())
    except OSError:
        return {}


def _snap(c: _Counts, target: Target) -> Window:
    return Window(
        time.perf_counter(),
        c.ok,
        c.errors,
        c.events,
        target.cpu() if target.cpu else math.nan,
        target.upstream_cpu() if target.upstream_cpu else math.nan,
        time.process_time(),
        target.ours_cpu() if target.ours_cpu else (math.nan, math.nan),
        _cores(),
    )


def _core_busy(a: Window, b: Window, cpu: int) -> float:
    if cpu not in a.cores or cpu not in b.cores:
        return math.nan
    busy = b.cores[cpu][0] - a.cores[cpu][0]
    total = b.cores[cpu][1] - a.cores[cpu][1]
    return busy / total if total > 0 else math.nan


def _others(busy: float, ours: float) -> float:
    """Share of a core used by processes that are not ours (other work on the machine)."""
    if math.isnan(busy):
        return math.nan
    return max(0.0, busy - (0.0 if math.isnan(ours) else ours))


def _rates(a: Window, b: Window) -> dict[str, float]:
    wall = b.t - a.t
    ok = b.ok - a.ok
    sut = b.sut_cpu - a.sut_cpu
    cpu0 = _core_busy(a, b, 0)
    cpu1 = _core_busy(a, b, 1)
    upstream = (b.upstream_cpu - a.upstream_cpu) / wall
    loadgen = (b.self_cpu - a.self_cpu) / wall
    ours0 = (b.ours[0] - a.ours[0]) / wall
    ours1 = (b.ours[1] - a.ours[1]) / wall + loadgen
    return {
        "seconds": wall,
        "completed": ok,
        "errors": b.errors - a.errors,
        "per_s": ok / wall,
        "events": b.events - a.events,
        "events_per_s": (b.events - a.events) / wall,
        "sut_cpu_s": sut,
        "sut_cpu_us_per": sut / ok * 1e6 if ok else math.nan,
        "sut_busy": sut / wall,
        "upstream_busy": upstream,
        "loadgen_busy": loadgen,
        "cpu0_busy": cpu0,
        "cpu1_busy": cpu1,
        "cpu0_others": _others(cpu0, ours0),
        "cpu1_others": _others(cpu1, ours1),
    }


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        if not t.done():
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        auto_decompress=False,
    )


async def closed_loop(
    target: Target,
    *,
    stream: bool,
    concurrency: int,
    warmup_s: float,
    seconds: float,
    drain_s: float = 30.0,
    events_per_stream: int = 0,
) -> dict[str, Any]:
    """``concurrency`` workers, each sending its next request when the last one ends.

    Completed requests (and, streaming, SSE events received) are counted over the
    ``seconds`` after ``warmup_s``; the target's CPU over the same window.

    Streaming with ``events_per_stream`` (from a check request): streams/s and CPU per
    stream come from the events received, so streams still open when the window ends
    count for their part (a slow target may finish no stream within the window).
    """
    body = request_body(target.model, stream=stream)
    headers = {**target.headers, "Content-Type": "application/json"}
    url = target.url
    c = _Counts()
    stop = False
    async with _session(concurrency) as session:

        async def worker() -> None:
            while not stop:
                try:
                    async with session.post(url, data=body, headers=headers) as r:
                        if stream:
                            tail = b""
                            async for data in r.content.iter_any():
                                n, tail = count_events(tail, data)
                                c.events += n
                        else:
                            await r.read()
                        if r.status == 200:
                            c.ok += 1
                        else:
                            c.error(f"HTTP {r.status}")
                            await asyncio.sleep(0.01)
                except (aiohttp.ClientError, TimeoutError) as e:
                    c.error(f"{type(e).__name__}: {e}")
                    await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        try:
            await asyncio.sleep(warmup_s)
            a = _snap(c, target)
            await asyncio.sleep(seconds)
            b = _snap(c, target)
            stop = True
            _, pending = await asyncio.wait(tasks, timeout=drain_s)
        finally:
            await _cancel(tasks)  # also on Ctrl-C: no task may outlive the session
    out: dict[str, Any] = dict(_rates(a, b))
    out["concurrency"] = concurrency
    out["undrained"] = len(pending)
    if stream:
        out["events_per_stream"] = (
            out["events"] / out["completed"] if out["completed"] else math.nan
        )
        out["completed_per_s"] = out["per_s"]
        if events_per_stream > 0 and out["events"]:
            out["per_s"] = out["events_per_s"] / events_per_stream
            out["sut_cpu_us_per"] = out["sut_cpu_s"] / out["events"] * events_per_stream * 1e6
    out["first_error"] = c.first_error
    return out


@dataclass
class _Open:
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    counts: _Counts = field(default_factory=_Counts)


async def open_loop(
    target: Target,
    *,
    rate: float,
    warmup_s: float,
    seconds: float,
    drain_s: float = 15.0,
) -> dict[str, Any]:
    """Requests sent on a fixed schedule whatever the answers do; each latency runs from
    its *scheduled* send time, so a stall shows in the numbers (no coordinated omission).
    """
    body = request_body(target.model, stream=False)
    headers = {**target.headers, "Content-Type": "application/json"}
    url = target.url
    res = _Open()
    n_warm = int(rate * warmup_s)
    n_total = n_warm + int(rate * seconds)
    interval = 1.0 / rate
    inflight: set[asyncio.Task[None]] = set()
    async with _session(1024) as session:

        async def one(due: float, measured: bool) -> None:
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as e:
                if measured:
                    res.counts.error(f"{type(e).__name__}: {e}")
                return
            if not measured:
                return
            if status == 200:
                res.latencies.append(time.perf_counter() - due)
                res.counts.ok += 1
            else:
                res.counts.error(f"HTTP {status}")

        try:
            t0 = time.perf_counter() + 0.02
            a: Window | None = None
            for i in range(n_total):
                due = t0 + i * interval
                if i == n_warm:
                    a = _snap(res.counts, target)
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if i >= n_warm:
                    res.lags.append(time.perf_counter() - due)
                task = asyncio.create_task(one(due, i >= n_warm))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            # the window ends when the last scheduled request is due + one interval
            await asyncio.sleep(max(0.0, t0 + n_total * interval - time.perf_counter()))
            b = _snap(res.counts, target)
            if inflight:
                _, pending = await asyncio.wait(set(inflight), timeout=drain_s)
            else:
                pending = set()
        finally:
            await _cancel(list(inflight))
    assert a is not None
    window = _rates(a, b)
    sent = n_total - n_warm
    lat_ms = [x * 1000 for x in res.latencies]
    return {
        "rate": rate,
        "sent": sent,
        "completed": res.counts.ok,
        "errors": res.counts.errors,
        "unfinished": len(pending),
        "p50_ms": percentile(lat_ms, 50),
        "p90_ms": percentile(lat_ms, 90),
        "p99_ms": percentile(lat_ms, 99),
        "max_ms": max(lat_ms) if lat_ms else math.nan,
        "send_lag_p99_ms": percentile([x * 1000 for x in res.lags], 99),
        "sut_cpu_us_per": window["sut_cpu_s"] / sent * 1e6 if sent else math.nan,
        "sut_busy": window["sut_busy"],
        "upstream_busy": window["upstream_busy"],
        "loadgen_busy": window["loadgen_busy"],
        "cpu0_busy": window["cpu0_busy"],
        "cpu1_busy": window["cpu1_busy"],
        "cpu0_others": window["cpu0_others"],
        "cpu1_others": window["cpu1_others"],
        "overloaded": res.counts.ok < 0.98 * sent,
        "first_error": res.counts.first_error,
    }


async def one_request(target: Target, *, stream: bool) -> tuple[int, int, int]:
    """(status, body bytes, SSE events) of a single request: the start-up check."""
    body = request_body(target.model, stream=stream)
    headers = {**target.headers, "Content-Type": "application/json"}
    async with _session(1) as session, session.post(target.url, data=body, headers=headers) as r:
        data = await r.read()
        return r.status, len(data), data.count(b"data: ")
