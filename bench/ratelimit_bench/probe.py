"""`python -m bench.ratelimit_bench.probe ARGS`: `strata tier1 ARGS` with the quota
hook timed where it runs, inside the real server.

A hot loop (bench.ratelimit_bench.micro) keeps the hook's code and data in the CPU
caches; a server runs it between network events, with a big heap. This launcher
wraps `GlobalQuota.admit` and `settle` (per route: `m-free` requests pass through
admit too and find no policy) and records wall and thread-CPU nanoseconds of every
admission that did not wait for a Sync (those are counted apart: their time is the
network's). The wrapper itself costs about a microsecond. On exit it writes a
summary to the JSON file named by STRATA_BENCH_PROBE_OUT.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.tier1_bench.stats import percentile

OUT_ENV = "STRATA_BENCH_PROBE_OUT"


class Probe:
    def __init__(self) -> None:
        self.admit: dict[str, list[tuple[int, int]]] = {}
        """route -> (wall ns, thread CPU ns) of admissions that did not wait."""
        self.waited: dict[str, int] = {}
        self.settle: list[tuple[int, int]] = []

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"admit": {}, "settle": _stats(self.settle)}
        for route, samples in self.admit.items():
            out["admit"][route] = {**_stats(samples), "waited": self.waited.get(route, 0)}
        return out


def _stats(samples: Sequence[tuple[int, int]]) -> dict[str, float]:
    wall = [w / 1000 for w, _ in samples]
    cpu = [c / 1000 for _, c in samples]
    return {
        "n": len(samples),
        "wall_p50_us": percentile(wall, 50),
        "wall_p99_us": percentile(wall, 99),
        "cpu_mean_us": sum(cpu) / len(cpu) if cpu else float("nan"),
    }


def install(probe: Probe) -> None:
    """Wrap the hook's methods on the class (every instance the app builds)."""
    from tier1.ratelimit import hook

    admit, settle = hook.GlobalQuota.admit, hook.GlobalQuota.settle
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    waits: dict[int, int] = {}

    async def timed_admit(self: Any, req: Any, consumer: Any, route: str) -> Any:
        # one event loop: nothing else runs unless admit awaits, which it does only
        # to wait for a Sync (through the client's sync_now, counted)
        before = _waits(self.client, waits)
        w0, c0 = clock(), cpu()
        result = await admit(self, req, consumer, route)
        w1, c1 = clock(), cpu()
        if _waits(self.client, waits) != before:
            probe.waited[route] = probe.waited.get(route, 0) + 1
        else:
            probe.admit.setdefault(route, []).append((w1 - w0, c1 - c0))
        return result

    def timed_settle(self: Any, admission: Any, usage: Any, *, failed: bool) -> None:
        w0, c0 = clock(), cpu()
        settle(self, admission, usage, failed=failed)
        if admission.token is not None:
            probe.settle.append((clock() - w0, cpu() - c0))

    hook.GlobalQuota.admit = timed_admit  # type: ignore[method-assign]
    hook.GlobalQuota.settle = timed_settle  # type: ignore[method-assign]


def _waits(client: Any, seen: dict[int, int]) -> int:
    """Calls to the client's `sync_now` so far (each is a wait on the network); the
    method is wrapped on the instance the first time."""
    key = id(client)
    if key not in seen:
        seen[key] = 0
        inner = client.sync_now

        async def counted(keys: Sequence[str], timeout_s: float) -> None:
            seen[key] += 1
            await inner(keys, timeout_s)

        client.sync_now = counted
    return seen[key]


def main(argv: list[str] | None = None) -> int:
    probe = Probe()
    install(probe)
    out = os.environ.get(OUT_ENV)
    if out:
        atexit.register(lambda: Path(out).write_bytes(orjson.dumps(probe.summary())))
    from tier1.cli import main as tier1_main

    return tier1_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
