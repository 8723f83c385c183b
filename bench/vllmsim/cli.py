"""``strata sim``: serve N simulated vLLM pods from one process on consecutive ports.

    strata sim --pods 3 --port 8200 --profile gie-8b [--speed X] [--max-loras K]
               [--faults SPEC]... [--host H] [--model NAME] [--seed N] [--spin-ms MS]

``--faults`` takes ``key=value,...`` (see :mod:`bench.vllmsim.faults`) for every pod, or
``INDEX:key=value,...`` for one pod; it may be repeated. Runs until SIGINT or SIGTERM,
then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys

from bench.vllmsim.faults import FaultSpec
from bench.vllmsim.pods import start_pods
from bench.vllmsim.profiles import DEFAULT_PROFILE, profile_names
from bench.vllmsim.server import SimConfig

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="strata sim", description="Serve simulated vLLM pods (bench/vllmsim)."
    )
    p.add_argument("--pods", type=int, default=3, help="number of pods (default 3)")
    p.add_argument("--port", type=int, default=8200, help="port of pod 0; pod i uses port+i")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        choices=profile_names(),
        help=f"step-time profile (default {DEFAULT_PROFILE})",
    )
    p.add_argument("--model", default="sim-llama-8b", help="served model name")
    p.add_argument(
        "--speed", type=float, default=1.0, help="model seconds per real second (default 1)"
    )
    p.add_argument(
        "--max-loras",
        type=int,
        default=4,
        help="concurrent LoRA adapters per pod; 0 disables LoRA (default 4)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for output lengths and faults")
    p.add_argument(
        "--spin-ms",
        type=float,
        default=0.0,
        help="poll the event loop this many ms before each step's end instead of sleeping: "
        "punctual tokens on VMs slow to wake an idle core, for some CPU (default 0)",
    )
    p.add_argument(
        "--faults",
        action="append",
        default=[],
        metavar="[INDEX:]SPEC",
        help="fault injection, e.g. error_rate=0.1,spike_rate=0.05,spike_ms=500 (repeatable)",
    )
    return p


def _parse_faults(items: list[str], pods: int) -> tuple[FaultSpec, dict[int, FaultSpec]]:
    """``SPEC`` applies to every pod, ``INDEX:SPEC`` to one pod (on top of the common ones)."""
    common: dict[str, str] = {}
    per_pod: dict[int, dict[str, str]] = {}
    for item in items:
        head, sep, rest = item.partition(":")
        if sep and head.strip().isdigit():
            idx = int(head)
            if not 0 <= idx < pods:
                raise ValueError(f"--faults pod index {idx} out of range")
            per_pod.setdefault(idx, {}).update(_pairs(rest))
        else:
            common.update(_pairs(item))
    base = FaultSpec().merged(common)
    return base, {i: base.merged(pairs) for i, pairs in per_pod.items()}


def _pairs(text: str) -> dict[str, str]:
    FaultSpec.parse(text)  # validates keys and numbers
    out: dict[str, str] = {}
    for item in text.split(","):
        if item.strip():
            key, _, value = item.partition("=")
            out[key.strip()] = value.strip()
    return out


YOUNG_GC_INTERVAL_S = 1.0
FULL_GC_INTERVAL_S = 600.0


async def _collect_garbage(young_s: float, full_s: float) -> None:
    """Cyclic collections on a timer instead of the allocation-driven ones.

    Streaming makes almost no cyclic garbage (refcounting frees it), but the automatic
    collector's pauses grow with the live heap: under load, queued requests hold about a
    million token ids in lists, and a full collection then stalls the event loop for
    ~100 ms, which shows up directly as token-emission jitter. So ``main`` turns
    automatic collection off and this task collects the young generations (objects made
    in the last second or so: a millisecond or two) every ``young_s`` and everything
    every ``full_s``.
    """
    loop = asyncio.get_running_loop()
    next_full = loop.time() + full_s
    while True:
        await asyncio.sleep(young_s)
        if loop.time() >= next_full:
            next_full = loop.time() + full_s
            gc.collect()
        else:
            gc.collect(1)


async def _serve(
    config: SimConfig, args: argparse.Namespace, per_pod: dict[int, FaultSpec]
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    pods = await start_pods(
        config, n=args.pods, host=args.host, base_port=args.port, faults=per_pod
    )
    collector = loop.create_task(_collect_garbage(YOUNG_GC_INTERVAL_S, FULL_GC_INTERVAL_S))
    try:
        for pod in pods:
            print(
                f"vllmsim pod {pod.index}: model {config.model} profile {config.profile} "
                f"listening on {pod.url}",
                flush=True,
            )
        await stop.wait()
    finally:
        collector.cancel()
        await pods.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.pods < 1 or args.speed <= 0 or args.max_loras < 0 or args.spin_ms < 0:
        print(
            "strata sim: --pods and --speed must be positive, --max-loras and --spin-ms >= 0",
            file=sys.stderr,
        )
        return 2
    try:
        common, per_pod = _parse_faults(args.faults, args.pods)
    except ValueError as exc:
        print(f"strata sim: {exc}", file=sys.stderr)
        return 2
    config = SimConfig(
        profile=args.profile,
        model=args.model,
        speed=args.speed,
        max_loras=args.max_loras,
        seed=args.seed,
        faults=common,
        spin_lead_ms=args.spin_ms,
    )
    # Objects alive at start-up (modules, profiles, tables) never need collecting again;
    # the rest is collected on a timer, off the allocation path (see _collect_garbage).
    gc.collect()
    gc.freeze()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.Runner()
    try:
        with runner:
            runner.run(_serve(config, args, per_pod))
    except OSError as exc:
        print(f"strata sim: {exc}", file=sys.stderr)
        return 1
    finally:
        if gc_was_enabled:
            gc.enable()
        gc.unfreeze()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
