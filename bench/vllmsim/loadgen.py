"""A lean streaming load generator for the real-time benchmark, and host CPU accounting.

The client must stay far from saturation, or its own delays show up as server latency.
So it never parses JSON per chunk: it reads raw body pieces (``iter_any``) and counts
SSE events by their ``\\n\\n`` terminators with bytes operations; the first token is the
second event of a chat stream (the first carries the assistant role). At the end of a
stream it reads ``completion_tokens`` from the usage chunk, so the benchmark can check
that every token arrived as its own event. A watchdog task records the client's own
event-loop lag, and :func:`host_cpu` lets the caller see CPU used by other processes
and stolen by the hypervisor during the run.

``python -m bench.vllmsim.loadgen --timer-floor SECONDS [--spin-ms MS]`` measures the
machine's floor instead: how late an idle event loop wakes for step-like timers (three
chains of 30-60 ms steps, with the simulator's early-wake-up handling), printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from bench.vllmsim.workload import random_text

__all__ = ["HostCpu", "LoadResult", "host_cpu", "run_load", "timer_floor"]

_USAGE = re.compile(rb'"completion_tokens":(\d+)')
_HEADERS = {"Content-Type": "application/json"}


@dataclass
class LoadResult:
    sent: int = 0
    errors: int = 0
    ttft: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    events: int = 0
    """SSE events received on completed streams (role, tokens, usage, [DONE])."""
    usage_tokens: int = 0
    """Sum of ``completion_tokens`` reported by the completed streams."""
    loop_lag: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0


async def _one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, out: LoadResult
) -> None:
    t0 = time.perf_counter()
    first = 0.0
    events = 0
    half = False  # the previous piece ended in the first "\n" of a "\n\n"
    last = b""
    try:
        async with session.post(url, data=body, headers=_HEADERS) as r:
            if r.status != 200:
                out.errors += 1
                return
            async for piece in r.content.iter_any():
                events += piece.count(b"\n\n") + (half and piece[:1] == b"\n")
                half = piece[-1:] == b"\n" and piece[-2:] != b"\n\n"
                if not first and events >= 2:
                    first = time.perf_counter() - t0
                last = piece
    except aiohttp.ClientError:
        out.errors += 1
        return
    out.e2e.append(time.perf_counter() - t0)
    if first:
        out.ttft.append(first)
    out.events += events
    m = _USAGE.search(last)
    if m is not None:
        out.usage_tokens += int(m.group(1))


async def _watch_lag(out: LoadResult, period: float = 0.005) -> None:
    while True:
        t = time.perf_counter()
        await asyncio.sleep(period)
        out.loop_lag.append(time.perf_counter() - t - period)


async def run_load(
    urls: list[str], rate: float, seconds: float, max_tokens: int, seed: int
) -> LoadResult:
    """Poisson streaming chat requests at ``rate``/s for ``seconds``, round-robin over
    ``urls``; returns when every stream has ended."""
    rng = random.Random(seed)
    systems = [random_text(rng, 600) for _ in range(6)]
    out = LoadResult()
    conn = aiohttp.TCPConnector(limit=0)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    watchdog = asyncio.create_task(_watch_lag(out))
    async with aiohttp.ClientSession(connector=conn) as session:
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        t = 0.0
        while True:
            t += rng.expovariate(rate)
            if t >= seconds:
                break
            delay = start + t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = orjson.dumps(
                {
                    "model": "sim-llama-8b",
                    "messages": [
                        {"role": "system", "content": rng.choice(systems)},
                        {"role": "user", "content": random_text(rng, 50)},
                    ],
                    "max_tokens": max_tokens,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
            )
            url = urls[out.sent % len(urls)] + "/v1/chat/completions"
            tasks.append(asyncio.create_task(_one_stream(session, url, body, out)))
            out.sent += 1
        await asyncio.gather(*tasks)
    watchdog.cancel()
    out.cpu_s = time.process_time() - cpu0
    out.wall_s = time.perf_counter() - wall0
    return out


@dataclass(frozen=True)
class HostCpu:
    """Cumulative CPU seconds from ``/proc/stat``: busy (user, nice, system, irq, softirq)
    and stolen by the hypervisor, for the whole machine and per CPU."""

    busy_s: float
    steal_s: float
    cpu_busy_s: tuple[float, ...]

    def __sub__(self, other: HostCpu) -> HostCpu:
        return HostCpu(
            self.busy_s - other.busy_s,
            self.steal_s - other.steal_s,
            tuple(a - b for a, b in zip(self.cpu_busy_s, other.cpu_busy_s, strict=True)),
        )


def host_cpu() -> HostCpu | None:
    """The machine's CPU counters now; None where ``/proc/stat`` is missing (not Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = [ln.split() for ln in fh if ln.startswith("cpu")]
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    total: tuple[float, float] | None = None
    per_cpu: list[float] = []
    for fields in lines:
        if len(fields) < 9:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        busy = (user + nice + system + irq + softirq) / hz
        if fields[0] == "cpu":
            total = (busy, steal / hz)
        else:
            per_cpu.append(busy)
    if total is None:
        return None
    return HostCpu(total[0], total[1], tuple(per_cpu))


async def timer_floor(seconds: float, spin_ms: float = 0.0, chains: int = 3) -> list[float]:
    """Lateness of idle step timers: each chain sleeps until ``spin_ms`` before its next
    step end (30-60 ms apart), polls the loop from there, and records how late it ran."""
    loop = asyncio.get_running_loop()
    rng = random.Random(0)
    lead = spin_ms / 1000.0
    late: list[float] = []

    def chain() -> None:
        due = time.monotonic()

        def arm() -> None:
            wait = due - time.monotonic() - lead
            if wait > 0.0005:
                loop.call_later(wait, fire)
            else:
                loop.call_soon(fire)

        def fire() -> None:
            nonlocal due
            now = time.monotonic()
            if now < due:
                arm()
                return
            late.append(now - due)
            due += rng.uniform(0.03, 0.06)
            arm()

        due += rng.uniform(0.03, 0.06)
        arm()

    for _ in range(chains):
        chain()
    await asyncio.sleep(seconds)
    return late


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.vllmsim.loadgen")
    p.add_argument("--timer-floor", type=float, required=True, metavar="SECONDS")
    p.add_argument("--spin-ms", type=float, default=0.0)
    args = p.parse_args(argv)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.Runner()
    with runner:
        late = sorted(runner.run(timer_floor(args.timer_floor, args.spin_ms)))
    q = (
        {
            f"p{k}": late[min(len(late) - 1, int(v * len(late)))]
            for k, v in (("50", 0.5), ("90", 0.9), ("99", 0.99))
        }
        if late
        else {}
    )
    sys.stdout.write(
        orjson.dumps({**q, "max": late[-1] if late else 0.0, "count": len(late)}).decode() + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
