"""`strata bench ratelimit`: what global rate limits cost tier1, and how exact they are.

hotpath: (a) in process: GlobalQuota.admit + settle over a warm lease vs NoQuota,
interleaved rounds, in a hot loop; (b) end to end: one tier1 process pinned to CPU 0
with `m-free` (no policy) and `m-limited` (limits nothing reaches, a live quota
replica), fake upstream, replica and load generator on CPU 1; rounds of phases A B A'
(m-free twice: A' vs A is the noise): max requests/s and tier1 CPU µs per request
(closed loop), p50/p99 at a fixed rate (open loop), the hook timed inside that tier1
process (bench.ratelimit_bench.probe), and a bursty key (1 s slices, no warm-up).

accuracy: 4 tier1 workers and 2 quota replicas, one key at max rate for --duration-s,
limits sized from a calibration run to run out at about 2/3 of it: admitted vs limit
for requests and tokens, at the client, at the fake upstream and in the replicas.

Progress goes to stderr, the markdown table to stdout, JSON and markdown to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import orjson

from bench.ratelimit_bench import report
from bench.ratelimit_bench.stack import REPLICA_BOOST, Stack
from bench.ratelimit_bench.summary import accuracy_verdicts, hotpath_verdicts
from bench.tier1_bench.procs import StartFailed, can_pin
from bench.tier1_bench.stats import Spread

AUX_CPU = 1
T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="strata bench ratelimit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--only", choices=["hotpath", "accuracy"], help="run one benchmark")
    p.add_argument(
        "--duration-s", type=float, default=60.0, help="accuracy run length (default 60)"
    )
    p.add_argument("--out", default=".strata/bench", help="directory for ratelimit.{json,md}")
    p.add_argument("--rounds", type=int, default=5, help="hot-path rounds (default 5)")
    p.add_argument(
        "--phase-s", type=float, default=4.0, help="hot-path closed-loop phase (default 4)"
    )
    p.add_argument("--warmup-s", type=float, default=1.0, help="warm-up per phase (default 1)")
    p.add_argument(
        "--rate", type=float, default=300.0, help="hot-path open-loop req/s (default 300)"
    )
    p.add_argument(
        "--concurrency", type=int, default=64, help="closed-loop connections (default 64)"
    )
    p.add_argument(
        "--bursty-s",
        type=float,
        default=-1.0,
        help="seconds per model of the bursty-key run (1 s slices taking turns); "
        "default rounds × phase-s / 2; 0 skips it",
    )
    p.add_argument(
        "--micro-requests",
        type=int,
        default=20_000,
        help="in-process requests per hook per round (default 20000)",
    )
    p.add_argument("--calib-s", type=float, default=5.0, help="accuracy calibration (default 5)")
    p.add_argument(
        "--calib-rps",
        type=float,
        default=0.0,
        help="skip the calibration and size the limits from this many admitted req/s",
    )
    p.add_argument(
        "--workers", type=int, default=4, help="accuracy: tier1 worker processes (default 4)"
    )
    p.add_argument(
        "--profile", action="store_true", help="add a cProfile of GlobalQuota.admit to the JSON"
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of every process of the benchmark, e.g. -10 to be measured ahead of "
        "other work on a shared machine (negative needs root; default 0: as is); quota "
        "replicas always run 5 levels ahead of the rest",
    )
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir with every log")
    return p


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (
        min(args.duration_s, args.phase_s, args.rate, args.calib_s) <= 0
        or min(args.rounds, args.concurrency, args.micro_requests) < 1
    ):
        say("strata bench ratelimit: durations, rates and counts must be > 0")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="strata-rl-bench-"))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    failed = True
    try:
        code = _run(args, tmp, argv if argv is not None else sys.argv[1:])
        failed = code != 0
        return code
    except KeyboardInterrupt:
        say("interrupted; stopping every process")
        return 130
    except (StartFailed, RuntimeError) as e:
        say(f"strata bench ratelimit: {e}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        if failed or args.keep_logs:
            say(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace, tmp: Path, argv: list[str]) -> int:
    t0 = time.monotonic()
    notes: list[str] = []
    record: dict[str, Any] = {
        "benchmark": "ratelimit",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": ("strata bench ratelimit " + shlex.join(argv)).strip(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "loadavg": _loadavg(),
        },
        "notes": notes,
    }
    if not can_pin():
        notes.append("fewer than 2 CPUs or no sched_setaffinity: nothing is pinned")
    if args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
            notes.append(f"every process of the benchmark ran at niceness {args.nice}")
        except PermissionError:
            say(f"cannot set niceness {args.nice} (not root); running as is")
            args.nice = 0
    stack = Stack(tmp, say, args.nice)
    try:
        if args.only in (None, "hotpath"):
            _hotpath(args, stack, record)
        if args.only in (None, "accuracy"):
            _accuracy(args, stack, record)
    finally:
        stack.close()
        notes += [n for n in stack.notes if n not in notes]
    verdicts = hotpath_verdicts(record.get("micro"), record.get("e2e"))
    if record.get("accuracy"):
        verdicts += accuracy_verdicts(record["accuracy"]["rows"])
    record["verdicts"] = [v.as_dict() for v in verdicts]
    record["wall_s"] = time.monotonic() - t0
    record = _jsonable(record)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ratelimit.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    md = report.markdown(record)
    (out / "ratelimit.md").write_text(md)
    print(md, flush=True)
    say(f"JSON {out / 'ratelimit.json'}, markdown {out / 'ratelimit.md'}")
    return 0


def _hotpath(args: argparse.Namespace, stack: Stack, record: dict[str, Any]) -> None:
    from bench.ratelimit_bench.hotpath import run_e2e
    from bench.ratelimit_bench.micro import run_micro

    say(f"hot path, in process: {args.rounds} rounds × {args.micro_requests:,} requests")
    record["micro"] = _loop(
        run_micro(rounds=args.rounds, requests=args.micro_requests, profile=args.profile, say=say)
    )
    say("hot path, end to end: fake upstream, quota replica, tier1")
    _pin_driver()
    record["e2e"] = _loop(
        run_e2e(
            stack,
            rounds=args.rounds,
            phase_s=args.phase_s,
            warmup_s=args.warmup_s,
            rate=args.rate,
            concurrency=args.concurrency,
            say=say,
            bursty_s=args.bursty_s if args.bursty_s >= 0 else args.rounds * args.phase_s / 2,
        )
    )
    record["e2e_config"] = {
        "rounds": args.rounds,
        "phase_s": args.phase_s,
        "concurrency": args.concurrency,
        "warmup_s": args.warmup_s,
        "placement": f"tier1 alone on CPU 0; fake upstream, quota replica ({REPLICA_BOOST} "
        f"nice levels ahead) and load generator on CPU {AUX_CPU}",
    }
    _hotpath_notes(record["e2e"], record["notes"])


def _accuracy(args: argparse.Namespace, stack: Stack, record: dict[str, Any]) -> None:
    from bench.ratelimit_bench.accuracy import run_accuracy

    say(f"accuracy: {args.workers} tier1 workers, 2 quota replicas, one key, {args.duration_s:g} s")
    _pin_driver()
    record["accuracy"] = _loop(
        run_accuracy(
            stack,
            duration_s=args.duration_s,
            calib_s=args.calib_s,
            calib_rps=args.calib_rps,
            workers=args.workers,
            concurrency=args.concurrency,
            say=say,
        )
    )
    _accuracy_notes(record["accuracy"], record["notes"])


def _loop(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)


def _pin_driver() -> None:
    if can_pin():
        os.sched_setaffinity(0, {AUX_CPU})


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _hotpath_notes(e2e: dict[str, Any], notes: list[str]) -> None:
    o, c = e2e["open"], e2e["closed"]
    if o["overloaded"]:
        notes.append(f"open loop overloaded for {', '.join(o['overloaded'])}: lower --rate")
    if o["send_lag_p99_ms"] > 2:
        notes.append(
            f"the open-loop generator sent up to {o['send_lag_p99_ms']:.1f} ms late (p99): "
            "CPU 1 is shared; the lag is in every model's latency alike"
        )
    for what, part in (("closed", c), ("open", o)):
        shares = part["others_max"]
        busy = {k: v for k, v in shares.items() if not math.isnan(v) and v > 0.1}
        if busy:
            notes.append(
                f"NOISY ({what} loop): processes that are not the benchmark's took up to "
                + ", ".join(f"{v:.0%} of CPU {k[3:]}" for k, v in sorted(busy.items()))
                + " in a phase; compare within rounds (the difference rows) and against A' vs A"
            )
    if c["errors"] or o["errors"]:
        notes.append(f"hot path: {c['errors']} closed-loop and {o['errors']} open-loop errors")


def _accuracy_notes(acc: dict[str, Any], notes: list[str]) -> None:
    if acc["workers_scraped"] < acc["workers"]:
        notes.append(
            f"accuracy: /metrics reached {acc['workers_scraped']} of {acc['workers']} workers; "
            "the lag histogram covers those"
        )
    other = {k: v for k, v in acc["client"]["other"].items() if k != "HTTP 429"}
    if other:
        notes.append(f"accuracy: answers other than 2xx/429: {other}")
    req = acc["rows"][0]
    if req["admitted"] != req["upstream_received"]:
        notes.append(
            f"accuracy: the client saw {req['admitted']:,} 2xx but the fake answered "
            f"{req['upstream_received']:,} requests"
        )


def _jsonable(obj: Any) -> Any:
    """Spreads become dicts; NaN stays (the markdown prints "—", orjson writes null)."""
    if isinstance(obj, Spread):
        return obj.as_dict()
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj
