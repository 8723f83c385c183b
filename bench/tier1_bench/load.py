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

from bench.tier1_bench.rawclient import Tally, start_workers
from bench.tier1_bench.stats import count_events, cpu_busy_from_proc_stat, percentile

REQUEST_TIMEOUT_S = 60.0
PROMPT = "Benchmark request: say something short about the weather in Lisbon today, please."


def request_body(
    model: str, *, stream: bool, include_usage: bool = False, max_tokens: int = 64
) -> bytes:
    """A ~180-byte OpenAI chat request (measurements.md §4 used 178 bytes)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
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
    include_usage: bool = False
    """Streaming requests ask for ``stream_options.include_usage``."""
    ours_cpu: Callable[[], tuple[float, float]] | None = None
    """CPU seconds of all our processes on (CPU 0, CPU 1), the driver excluded."""
    max_tokens: int = 64


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


def _snap(c: Tally, target: Target) -> Window:
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
    client: str = "raw",
) -> dict[str, Any]:
    """``concurrency`` workers, each sending its next request when the last one ends.

    Completed requests (and, streaming, SSE events received) are counted over the
    ``seconds`` after ``warmup_s``; the target's CPU over the same window.

    Streaming with ``events_per_stream`` (from a check request): streams/s and CPU per
    stream come from the events received, so streams still open when the window ends
    count for their part (a slow target may finish no stream within the window).

    ``client``: "raw" (:mod:`bench.tier1_bench.rawclient`, cheap) or "aiohttp".
    """
    if client == "raw":
        return await _closed_loop_raw(
            target,
            stream=stream,
            concurrency=concurrency,
            warmup_s=warmup_s,
            seconds=seconds,
            drain_s=drain_s,
            events_per_stream=events_per_stream,
        )
    body = request_body(
        target.model,
        stream=stream,
        include_usage=target.include_usage,
        max_tokens=target.max_tokens,
    )
    headers = {**target.headers, "Content-Type": "application/json"}
    url = target.url
    c = Tally()
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
    return _closed_result(a, b, c, concurrency, len(pending), stream, events_per_stream)


async def _closed_loop_raw(
    target: Target,
    *,
    stream: bool,
    concurrency: int,
    warmup_s: float,
    seconds: float,
    drain_s: float,
    events_per_stream: int,
) -> dict[str, Any]:
    body = request_body(
        target.model,
        stream=stream,
        include_usage=target.include_usage,
        max_tokens=target.max_tokens,
    )
    headers = {**target.headers, "Content-Type": "application/json"}
    c = Tally()
    stop = False
    workers = await start_workers(target.url, headers, body, concurrency, c, lambda: not stop)
    try:
        await asyncio.sleep(warmup_s)
        a = _snap(c, target)
        await asyncio.sleep(seconds)
        b = _snap(c, target)
        stop = True
        _, pending = await asyncio.wait([w.done for w in workers], timeout=drain_s)
    finally:
        for w in workers:
            w.close()
    return _closed_result(a, b, c, concurrency, len(pending), stream, events_per_stream)


def _closed_result(
    a: Window,
    b: Window,
    c: Tally,
    concurrency: int,
    undrained: int,
    stream: bool,
    events_per_stream: int,
) -> dict[str, Any]:
    out: dict[str, Any] = dict(_rates(a, b))
    out["concurrency"] = concurrency
    out["undrained"] = undrained
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
    counts: Tally = field(default_factory=Tally)
    sent: int = 0
    wall: float = 0.0
    sut_cpu: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)
    slices: int = 0


async def _schedule(
    session: aiohttp.ClientSession,
    target: Target,
    body: bytes,
    headers: dict[str, str],
    rate: float,
    seconds: float,
    res: _Open | None,
    inflight: set[asyncio.Task[None]],
) -> None:
    """Send on a fixed schedule for ``seconds``; record into ``res`` (None: warm-up)."""

    async def one(due: float) -> None:
        try:
            async with session.post(target.url, data=body, headers=headers) as r:
                await r.read()
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as e:
            if res is not None:
                res.counts.error(f"{type(e).__name__}: {e}")
            return
        if res is None:
            return
        if status == 200:
            res.latencies.append(time.perf_counter() - due)
            res.counts.ok += 1
        else:
            res.counts.error(f"HTTP {status}")

    n = max(1, int(rate * seconds))
    interval = 1.0 / rate
    t0 = time.perf_counter() + 0.002
    for i in range(n):
        due = t0 + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if res is not None:
            res.lags.append(time.perf_counter() - due)
            res.sent += 1
        task = asyncio.create_task(one(due))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    await asyncio.sleep(max(0.0, t0 + n * interval - time.perf_counter()))


async def open_loop(
    targets: list[Target],
    *,
    rate: float,
    warmup_s: float,
    seconds: float,
    slice_s: float = 1.0,
    drain_s: float = 15.0,
) -> dict[str, dict[str, Any]]:
    """Requests sent on a fixed schedule whatever the answers do; each latency runs from
    its *scheduled* send time, so a stall shows in the numbers (no coordinated omission).

    The targets take turns in ``slice_s`` slices (rotating order) until each has had
    ``seconds``: a burst of other work on the machine then falls on all of them alike,
    and "added" latency (target − direct) is not skewed by when each one ran.
    """
    results = {t.name: _Open() for t in targets}
    inflight: dict[str, set[asyncio.Task[None]]] = {t.name: set() for t in targets}
    sessions = {t.name: _session(1024) for t in targets}
    bodies = {t.name: request_body(t.model, stream=False) for t in targets}
    headers = {t.name: {**t.headers, "Content-Type": "application/json"} for t in targets}
    try:
        for t in targets:  # warm-up: connections open, caches warm
            await _schedule(
                sessions[t.name],
                t,
                bodies[t.name],
                headers[t.name],
                rate,
                warmup_s,
                None,
                inflight[t.name],
            )
            await _drain(inflight[t.name], 2.0)
        slices = max(1, round(seconds / slice_s))
        for k in range(slices):
            order = targets[k % len(targets) :] + targets[: k % len(targets)]
            for t in order:
                res = results[t.name]
                a = _snap(res.counts, t)
                await _schedule(
                    sessions[t.name],
                    t,
                    bodies[t.name],
                    headers[t.name],
                    rate,
                    seconds / slices,
                    res,
                    inflight[t.name],
                )
                b = _snap(res.counts, t)
                w = _rates(a, b)
                res.wall += w["seconds"]
                res.sut_cpu += w["sut_cpu_s"]
                res.slices += 1
                for key in (
                    "upstream_busy",
                    "loadgen_busy",
                    "cpu0_busy",
                    "cpu1_busy",
                    "cpu0_others",
                    "cpu1_others",
                ):
                    res.sums[key] = res.sums.get(key, 0.0) + w[key] * w["seconds"]
                await _drain(inflight[t.name], 1.0)  # keep slices from overlapping
        unfinished = {}
        for t in targets:
            unfinished[t.name] = await _drain(inflight[t.name], drain_s)
    finally:
        for tasks in inflight.values():
            await _cancel(list(tasks))
        for session in sessions.values():
            await session.close()
    out: dict[str, dict[str, Any]] = {}
    for t in targets:
        res = results[t.name]
        lat_ms = [x * 1000 for x in res.latencies]
        out[t.name] = {
            "rate": rate,
            "sent": res.sent,
            "completed": res.counts.ok,
            "errors": res.counts.errors,
            "unfinished": unfinished[t.name],
            "slices": res.slices,
            "p50_ms": percentile(lat_ms, 50),
            "p90_ms": percentile(lat_ms, 90),
            "p99_ms": percentile(lat_ms, 99),
            "max_ms": max(lat_ms) if lat_ms else math.nan,
            "send_lag_p99_ms": percentile([x * 1000 for x in res.lags], 99),
            "sut_cpu_us_per": res.sut_cpu / res.sent * 1e6 if res.sent else math.nan,
            "sut_busy": res.sut_cpu / res.wall if res.wall else math.nan,
            **{k: v / res.wall for k, v in res.sums.items()},
            "overloaded": res.counts.ok < 0.98 * res.sent,
            "first_error": res.counts.first_error,
        }
    return out


async def _drain(tasks: set[asyncio.Task[None]], timeout_s: float) -> int:
    """Wait up to ``timeout_s`` for in-flight requests; how many are still running."""
    if not tasks:
        return 0
    _, pending = await asyncio.wait(set(tasks), timeout=timeout_s)
    return len(pending)


async def one_request(target: Target, *, stream: bool) -> tuple[int, int, int]:
    """(status, body bytes, SSE events) of a single request: the start-up check."""
    body = request_body(
        target.model,
        stream=stream,
        include_usage=target.include_usage,
        max_tokens=target.max_tokens,
    )
    headers = {**target.headers, "Content-Type": "application/json"}
    async with _session(1) as session, session.post(target.url, data=body, headers=headers) as r:
        data = await r.read()
        return r.status, len(data), data.count(b"data: ")
