"""`strata bench tier2`: tier2's pickers against baselines in the simulator's virtual time.

    strata bench tier2 [--scenarios abcdefg] [--policies ...] [--scale 1.0] [--quick]
                       [--out DIR] [--jobs N] [--seed 0] [--knee-seeds 4]
                       [--variant NAME=JSON ...]

Every scenario of issue 7 (see :mod:`bench.tier2_bench.scenarios`) runs each policy on 8
simulated vLLM pods (:mod:`bench.vllmsim.des`): ``round-robin``, ``least-queue`` (on
scraped metrics), ``gie-default`` and ``strata`` (tier2's own ``PoolPicker``, the class
the proxy runs) and ``oracle`` (the ``strata`` picker fed the simulator's true metrics,
cache contents and prompt lengths: what better estimates would buy it, see
:mod:`bench.tier2_bench.informed_router`). Results go to a fresh
directory under ``.strata/bench/`` (or ``--out``): ``results.json``, ``summary.md`` and
one PNG per scenario. Progress lines go to stderr.

``--variant NAME=JSON`` adds a policy: a named profile with some plugins' parameters
replaced, e.g. ``strata-full={"base": "strata", "overrides": {"prefix-index":
{"capacity": "full"}}}``, to try a change before proposing it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from bench.tier2_bench import report
from bench.tier2_bench.harness import Window, run_point
from bench.tier2_bench.informed_router import InformedRouter
from bench.tier2_bench.picker_router import PickerRouter
from bench.tier2_bench.picklatency import measure_pick_latency
from bench.tier2_bench.routers import BenchRouter, LeastQueueRouter, RoundRobinRouter
from bench.tier2_bench.scenarios import (
    NUM_PODS,
    PROFILE,
    Corpora,
    Scenario,
    scenario_list,
)
from bench.vllmsim.config import SimConfig
from common import jsonutil
from common.config.pool import PluginConfig
from common.config.scheduling import NAMED_PROFILES

__all__ = ["POLICIES", "Task", "main", "make_router", "run_task"]

POLICIES = ("round-robin", "least-queue", "gie-default", "strata", "oracle")
PICKER_POLICIES = ("gie-default", "strata")


@dataclass(frozen=True, slots=True)
class Variant:
    """A named profile with some plugins' parameters replaced."""

    base: str
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def plugins(self) -> tuple[PluginConfig, ...]:
        out = []
        for spec in NAMED_PROFILES[self.base]:
            params = {**spec.parameters, **self.overrides.get(spec.type, {})}
            out.append(PluginConfig(type=spec.type, weight=spec.weight, parameters=params))
        unknown = set(self.overrides) - {p.type for p in out}
        if unknown:
            raise ValueError(f"{self.base} has no plugin {', '.join(sorted(unknown))}")
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Task:
    """One simulation: picklable, so --jobs can run it in another process."""

    scenario: str
    rate: float
    policy: str
    scrape_interval_s: float
    window: Window
    seed: int = 0
    num_pods: int = NUM_PODS
    profile: str = PROFILE
    variant: Variant | None = None


@cache
def _corpora(seed: int) -> Corpora:
    """Prompt material, built once per process."""
    return Corpora(seed)


def make_router(
    policy: str,
    *,
    num_pods: int,
    model: str,
    scrape_interval_s: float,
    seed: int,
    variant: Variant | None = None,
) -> BenchRouter:
    """The router of a policy or variant; ``oracle`` is the ``strata`` profile with the
    same seed as the ``strata`` policy, so that the two differ in information only."""
    rng = random.Random(f"{policy}:{seed}")
    if variant is not None:
        return PickerRouter(
            variant.base,
            num_pods=num_pods,
            model=model,
            scrape_interval_s=scrape_interval_s,
            seed=seed,
            plugins=variant.plugins(),
            label=policy,
        )
    if policy == "round-robin":
        return RoundRobinRouter()
    if policy == "least-queue":
        return LeastQueueRouter(rng)
    if policy == "oracle":
        return InformedRouter(
            "strata",
            num_pods=num_pods,
            model=model,
            scrape_interval_s=scrape_interval_s,
            seed=seed,
            label=policy,
        )
    if policy in NAMED_PROFILES:
        return PickerRouter(
            policy, num_pods=num_pods, model=model, scrape_interval_s=scrape_interval_s, seed=seed
        )
    raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")


def run_task(task: Task) -> dict[str, Any]:
    """Run one simulation; the result also names its task."""
    config = SimConfig(profile=task.profile, seed=task.seed)
    router = make_router(
        task.policy,
        num_pods=task.num_pods,
        model=config.model,
        scrape_interval_s=task.scrape_interval_s,
        seed=task.seed,
        variant=task.variant,
    )
    workload = _corpora(task.seed).workload(task.scenario, task.rate)
    res = run_point(
        workload,
        router,
        config=config,
        num_pods=task.num_pods,
        window=task.window,
        scrape_interval_s=task.scrape_interval_s,
    )
    if isinstance(router, PickerRouter):
        stats = router.picker.stats()
        res["pick_reasons"] = dict(stats.reasons)
        res["saturated_picks"] = router.saturated_picks
    res.update(
        scenario=task.scenario,
        rate=task.rate,
        policy=task.policy,
        scrape_interval_s=task.scrape_interval_s,
        seed=task.seed,
    )
    return res


def _progress(res: Mapping[str, Any]) -> None:
    print(
        f"[{res['scenario']}] {res['policy']:>12} rate {res['rate']:g} scrape "
        f"{1000 * res['scrape_interval_s']:g} ms: TTFT p90 {res['ttft_p90_s']:.3f} s, "
        f"p99 {res['ttft_p99_s']:.3f} s, {res['output_tps']:.0f} out tok/s, hit "
        f"{res['prefix_hit_rate']:.2f} ({res['wall_s']:.1f} s wall, {res['cpu_s']:.1f} s CPU)",
        file=sys.stderr,
        flush=True,
    )


def _run_all(tasks: Sequence[Task], jobs: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if jobs <= 1:
        for t in tasks:
            res = run_task(t)
            _progress(res)
            out.append(res)
        return out
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for res in pool.map(run_task, tasks):
            _progress(res)
            out.append(res)
    return out


def _tasks(
    scen: Scenario,
    rates: Sequence[float],
    policies: Sequence[str],
    args: argparse.Namespace,
    variants: Mapping[str, Variant],
    seed: int | None = None,
) -> list[Task]:
    return [
        Task(
            scen.key,
            rate,
            p,
            interval,
            scen.window,
            args.seed if seed is None else seed,
            args.pods,
            args.profile,
            variants.get(p),
        )
        for rate in rates
        for interval in scen.scrape_intervals
        for p in policies
    ]


def _knee_tasks(
    scen: Scenario,
    knee: float,
    policies: Sequence[str],
    args: argparse.Namespace,
    variants: Mapping[str, Variant],
) -> list[Task]:
    """The knee again with the other seeds, for the policies the verdicts compare."""
    judged = [p for p in policies if p in report.JUDGED]
    seeds = range(args.seed + 1, args.seed + args.knee_seeds)
    return [t for seed in seeds for t in _tasks(scen, (knee,), judged, args, variants, seed)]


def run_benchmark(
    scenarios: Sequence[Scenario],
    policies: Sequence[str],
    args: argparse.Namespace,
    variants: Mapping[str, Variant],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run the scenarios; returns the results document (see :mod:`report`)."""
    results: dict[str, Any] = {}
    ladders = [s for s in scenarios if s.kind == "ladder"]
    tasks = [t for s in ladders for t in _tasks(s, s.rates, policies, args, variants)]
    runs = _run_all(tasks, args.jobs)
    # a knee is where queues start to build, so one run there is chaotic (a preemption
    # cascade or not): the verdicts take the mean over --knee-seeds seeds
    knees = {s.key: report.knee_rate([r for r in runs if r["scenario"] == s.key]) for s in ladders}
    extra = [
        t
        for s in ladders
        if (knee := knees[s.key]) is not None
        for t in _knee_tasks(s, knee, policies, args, variants)
    ]
    if extra:
        log(f"knees {knees}: {len(extra)} more runs with seeds {args.seed + 1}..")
    runs += _run_all(extra, args.jobs)
    for s in ladders:
        results[s.key] = report.ladder_result(s, [r for r in runs if r["scenario"] == s.key])
    for s in (s for s in scenarios if s.kind == "scrape"):
        knee = results.get("a", {}).get("knee_rate")
        rate = float(knee) if knee is not None else s.rates[0]
        log(f"[{s.key}] fixed rate {rate:g} req/s")
        runs = _run_all(_tasks(s, (rate,), policies, args, variants), args.jobs)
        results[s.key] = report.scrape_result(s, rate, runs)
    for s in (s for s in scenarios if s.kind == "pick"):
        corpus = _corpora(args.seed).high_cache
        rows = []
        for n in s.endpoints:
            for p in [p for p in policies if p in PICKER_POLICIES or p in variants]:
                v = variants.get(p)
                timed = 200 if args.quick else (1000 if n >= 1024 else 2000)
                row = measure_pick_latency(
                    v.base if v else p,
                    n,
                    corpus,
                    warm_picks=max(timed, 2 * n),
                    timed_picks=timed,
                    seed=args.seed,
                    plugins=v.plugins() if v else (),
                )
                row["policy"] = p
                log(
                    f"[g] {p:>12} {n:5d} endpoints: pick p50 {row['pick_p50_us']:.0f} us, "
                    f"p99 {row['pick_p99_us']:.0f} us (CPU p99 {row['pick_cpu_p99_us']:.0f} us)"
                )
                rows.append(row)
        results[s.key] = report.pick_result(s, rows)
    return results


def _parse_variants(items: Sequence[str]) -> dict[str, Variant]:
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--variant wants NAME=JSON, got {item!r}")
        data = jsonutil.loads(raw)
        v = Variant(str(data["base"]), dict(data.get("overrides", {})))
        v.plugins()  # validate now, not in a worker
        out[name] = v
    return out


def _sources_digest() -> str:
    """Which scheduler code ran: a digest of tier2's sources and the profile table."""
    root = Path(__file__).resolve().parents[2]
    files = sorted((root / "tier2").rglob("*.py")) + [root / "common/config/scheduling.py"]
    h = hashlib.sha256()
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _out_dir(arg: str | None) -> Path:
    if arg:
        path = Path(arg)
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(".strata") / "bench" / f"tier2-{stamp}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="strata bench tier2", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", default="all", help="subset, e.g. 'ac' or 'a,c,g' (default all)")
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=JSON")
    p.add_argument("--scale", type=float, default=1.0, help="stretch every window (virtual s)")
    p.add_argument("--quick", action="store_true", help="small windows, two ladder points")
    p.add_argument("--out", help="output directory (default: a new one under .strata/bench/)")
    p.add_argument("--jobs", type=int, default=1, help="simulations in parallel processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--knee-seeds",
        type=int,
        help="seeds run at each ladder's knee, whose mean the verdicts use "
        "(default 4; 1 with --quick)",
    )
    p.add_argument("--pods", type=int, default=NUM_PODS)
    p.add_argument("--profile", default=PROFILE, help="bench.vllmsim step-time profile")
    args = p.parse_args(argv)
    if args.scale <= 0:
        p.error("--scale must be positive")
    if args.knee_seeds is None:
        args.knee_seeds = 1 if args.quick else 4
    if args.knee_seeds < 1:
        p.error("--knee-seeds must be at least 1")
    variants = _parse_variants(args.variant)
    policies = [x for x in args.policies.split(",") if x] + list(variants)
    for pol in policies:
        if pol not in POLICIES and pol not in variants:
            p.error(f"unknown policy {pol!r}; known: {', '.join(POLICIES)}")
    try:
        scenarios = [
            s.sized(scale=args.scale, quick=args.quick) for s in scenario_list(args.scenarios)
        ]
    except KeyError as e:
        p.error(str(e.args[0]))
    out = _out_dir(args.out)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    log(f"strata bench tier2 -> {out}")
    digest = _sources_digest()  # before the workers import the code it names
    wall0 = time.perf_counter()
    results = run_benchmark(scenarios, policies, args, variants, log)
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    meta = {
        "command": "strata bench tier2 " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": datetime.now().isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "cpu_s": round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 1),
        "profile": args.profile,
        "tier2_sources_sha256": digest,
        "pods": args.pods,
        "seed": args.seed,
        "knee_seeds": args.knee_seeds,
        "scale": args.scale,
        "quick": args.quick,
        "policies": policies,
        "variants": {k: {"base": v.base, "overrides": v.overrides} for k, v in variants.items()},
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    paths = report.write(out, meta, results)
    log(f"done in {meta['wall_s']} s ({meta['cpu_s']} s CPU): " + ", ".join(str(x) for x in paths))
    return 0
