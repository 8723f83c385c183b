"""Results → knees, target verdicts, ``results.json``, ``summary.md`` and PNG plots.

The knee of a ladder is the highest rate at which the reference policy (``gie-default``,
else the first policy run) still serves what is offered: output tokens per second in
the measured window at least 95% of the offered rate, and every measured request got
its first token. Past it the cluster is saturated and latencies grow with the length
of the run, so comparisons are made at the knee.

Targets (issue 7): ``strata`` at least 20% lower TTFT p90 than ``gie-default`` at the knee
of (a), (c), (e); at most 5% worse on any headline metric (TTFT p50/p90/p99, ITL p50/p99,
output throughput) at the knee of (b), (d); closing at least half the TTFT-p90 gap from
``gie-default`` to the oracle at the knee of (a), (c) (where the oracle is not at least
5% better there is no gap, and `strata` must then be within 5% of ``gie-default``); pick
p99 at most 1 ms at 16 endpoints and 5 ms at 256. The oracle is `strata`'s own picker
fed the simulator's true state (:mod:`bench.tier2_bench.informed_router`), so the gap is
what better estimates would buy, not a different rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.tier2_bench.scenarios import Scenario
from common import jsonutil

__all__ = [
    "knee_rate",
    "ladder_result",
    "markdown",
    "pick_result",
    "scrape_result",
    "verdicts",
    "write",
]

REFERENCE = "gie-default"
CANDIDATE = "strata"
ORACLE = "oracle"
JUDGED = (REFERENCE, CANDIDATE, ORACLE)
"""The policies the verdicts compare, run at the knee with every seed."""
HEADLINE_LOWER = ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "itl_p50_ms", "itl_p99_ms")
HEADLINE_HIGHER = ("output_tps",)
PICK_LIMITS_US = {16: 1000.0, 256: 5000.0}
GAP_FLOOR = 0.05
"""A gie-default → oracle gap under 5% of gie-default's TTFT p90 is noise, not a gap."""

Run = dict[str, Any]


def _sustained(r: Mapping[str, Any]) -> bool:
    return bool(r["output_tps"] >= 0.95 * r["offered_output_tps"] and r["unserved"] == 0)


def knee_rate(runs: Sequence[Mapping[str, Any]], reference: str = REFERENCE) -> float | None:
    """Highest rate the reference sustains (lowest rate if it sustains none)."""
    policies = [r["policy"] for r in runs]
    ref = reference if reference in policies else (policies[0] if policies else None)
    mine = sorted((r for r in runs if r["policy"] == ref), key=lambda r: r["rate"])
    if not mine:
        return None
    ok = [r["rate"] for r in mine if _sustained(r)]
    return float(max(ok)) if ok else float(mine[0]["rate"])


def _at(runs: Sequence[Run], policy: str, rate: float | None) -> Run | None:
    for r in runs:
        if r["policy"] == policy and r["rate"] == rate:
            return r
    return None


_POOLED = (*HEADLINE_LOWER, *HEADLINE_HIGHER, "offered_output_tps", "preemptions", "unserved")


def pooled(runs: Sequence[Run]) -> Run:
    """One policy at one rate over several seeds: the mean of each headline metric, and
    TTFT p90 per seed (``ttft_p90_by_seed``)."""
    out = dict(runs[0])
    for k in _POOLED:
        values = [r[k] for r in runs if r.get(k) is not None]
        if values:
            out[k] = sum(values) / len(values)
    out["seeds"] = [r.get("seed", 0) for r in runs]
    out["ttft_p90_by_seed"] = [r["ttft_p90_s"] for r in runs]
    return out


def knee_runs(runs: Sequence[Run], knee: float | None) -> list[Run]:
    """Every policy at the knee, pooled over the seeds it ran with there (ordered as run)."""
    by_policy: dict[str, list[Run]] = {}
    for r in runs:
        if r["rate"] == knee:
            by_policy.setdefault(r["policy"], []).append(r)
    return [pooled(rs) for rs in by_policy.values()]


def verdicts(scen: Scenario, runs: Sequence[Run], knee: float | None) -> list[dict[str, Any]]:
    """The scenario's target checks at the knee (empty if the policies were not run);
    ``runs`` at the knee may be pooled over seeds (:func:`pooled`)."""
    gie, strata = _at(runs, REFERENCE, knee), _at(runs, CANDIDATE, knee)
    if gie is None or strata is None:
        return []
    out: list[dict[str, Any]] = []
    g90, s90 = gie["ttft_p90_s"], strata["ttft_p90_s"]
    seeds = len(strata.get("seeds", ())) or 1
    over = f", mean of {seeds} seeds" if seeds > 1 else ""
    if scen.target == "better":
        gain = 1.0 - s90 / g90 if g90 > 0 else 0.0
        out.append(
            {
                "check": "strata TTFT p90 >= 20% lower than gie-default at the knee",
                "value": f"{100 * gain:+.1f}% ({s90:.3f} s vs {g90:.3f} s{over})",
                "pass": gain >= 0.2,
            }
        )
    if scen.target == "par":
        worst_key, worst = "", 0.0
        for k in HEADLINE_LOWER:
            if gie[k] > 0 and strata[k] / gie[k] - 1.0 > worst:
                worst_key, worst = k, strata[k] / gie[k] - 1.0
        for k in HEADLINE_HIGHER:
            if strata[k] > 0 and gie[k] / strata[k] - 1.0 > worst:
                worst_key, worst = k, gie[k] / strata[k] - 1.0
        out.append(
            {
                "check": "strata at most 5% worse than gie-default on every headline metric",
                "value": f"worst {worst_key or 'none'} {100 * worst:+.1f}%{over}",
                "pass": worst <= 0.05,
            }
        )
    oracle = _at(runs, ORACLE, knee)
    if scen.gap_target and oracle is not None:
        o90 = oracle["ttft_p90_s"]
        gap = g90 - o90
        if gap > GAP_FLOOR * g90:
            closed = (g90 - s90) / gap
            out.append(
                {
                    "check": "strata closes >= half the gie-default -> oracle TTFT p90 gap",
                    "value": f"{100 * closed:.0f}% of {gap:.3f} s{over}",
                    "pass": closed >= 0.5,
                }
            )
        else:
            out.append(
                {
                    "check": "strata closes >= half the gie-default -> oracle TTFT p90 gap",
                    "value": f"no gap to close (oracle {o90:.3f} s, gie-default {g90:.3f} s): "
                    f"strata {s90:.3f} s must be within 5% of gie-default",
                    "pass": s90 <= 1.05 * g90,
                }
            )
    return out


def ladder_result(scen: Scenario, runs: Sequence[Run]) -> dict[str, Any]:
    """``runs``: the ladder with the first seed, and the knee with any others."""
    seeds = sorted({r.get("seed", 0) for r in runs})
    first = [r for r in runs if r.get("seed", 0) == seeds[0]] if seeds else []
    knee = knee_rate(first)
    at_knee = knee_runs(runs, knee)
    return {
        "title": scen.title,
        "kind": scen.kind,
        "rate_unit": scen.rate_unit,
        "window": {"warmup": scen.window.warmup, "measure": scen.window.measure},
        "knee_rate": knee,
        "knee_seeds": seeds,
        "knee_pooled": at_knee,
        "verdicts": verdicts(scen, at_knee, knee),
        "runs": first,
        "knee_other_seeds": [r for r in runs if r.get("seed", 0) != (seeds[0] if seeds else 0)],
    }


def scrape_result(scen: Scenario, rate: float, runs: Sequence[Run]) -> dict[str, Any]:
    return {
        "title": scen.title,
        "kind": scen.kind,
        "rate": rate,
        "window": {"warmup": scen.window.warmup, "measure": scen.window.measure},
        "runs": list(runs),
    }


def pick_result(scen: Scenario, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    checks = []
    for row in rows:
        limit = PICK_LIMITS_US.get(int(row["endpoints"]))
        if row["policy"] == CANDIDATE and limit is not None:
            checks.append(
                {
                    "check": f"strata pick p99 <= {limit / 1000:g} ms at {row['endpoints']} endpoints",
                    "value": f"{row['pick_p99_us'] / 1000:.3f} ms "
                    f"(CPU {row['pick_cpu_p99_us'] / 1000:.3f} ms)",
                    "pass": row["pick_p99_us"] <= limit,
                }
            )
    return {"title": scen.title, "kind": scen.kind, "verdicts": checks, "rows": list(rows)}


# --- markdown -----------------------------------------------------------------------

_COLUMNS = (
    ("TTFT p50 s", "ttft_p50_s", "{:.3f}"),
    ("p90", "ttft_p90_s", "{:.3f}"),
    ("p99", "ttft_p99_s", "{:.3f}"),
    ("ITL p50 ms", "itl_p50_ms", "{:.0f}"),
    ("p99", "itl_p99_ms", "{:.0f}"),
    ("out tok/s", "output_tps", "{:.0f}"),
    ("hit", "prefix_hit_rate", "{:.2f}"),
    ("preempt", "preemptions", "{}"),
    ("rejected", "rejections", "{}"),
    ("unserved", "unserved", "{}"),
    ("pick p50 us", "pick_p50_us", "{:.0f}"),
    ("p99", "pick_p99_us", "{:.0f}"),
    ("CPU p99", "pick_cpu_p99_us", "{:.0f}"),
)


def _fmt(fmt: str, v: Any) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return fmt.format(v)


def _metric_table(rows: Sequence[Run], first: str, key: str) -> list[str]:
    head = f"| {first} | " + " | ".join(c[0] for c in _COLUMNS) + " |"
    out = [head, "|" + "---|" * (len(_COLUMNS) + 1)]
    for r in rows:
        cells = [_fmt(f, r.get(k, math.nan)) for _, k, f in _COLUMNS]
        out.append(f"| {r[key]} | " + " | ".join(cells) + " |")
    return out


def _ladder_md(key: str, res: Mapping[str, Any], policies: Sequence[str]) -> list[str]:
    runs = res["runs"]
    knee = res["knee_rate"]
    out = [f"### ({key}) {res['title']}", ""]
    out.append(f"Knee ({REFERENCE} sustains the offered load): {knee:g} {res['rate_unit']}.")
    out.append("")
    at_knee = [r for p in policies for r in runs if r["policy"] == p and r["rate"] == knee]
    out += _metric_table(at_knee, "policy @ knee", "policy")
    pooled_rows = [r for r in res.get("knee_pooled", ()) if len(r.get("seeds", ())) > 1]
    if pooled_rows:
        out += [
            "",
            f"At the knee over seeds {', '.join(map(str, pooled_rows[0]['seeds']))} "
            "(the verdicts use these means):",
            "",
        ]
        out.append("| policy | TTFT p90 mean s | per seed | p99 mean | out tok/s | preempt |")
        out.append("|---|---|---|---|---|---|")
        for r in pooled_rows:
            per = " / ".join(f"{v:.3f}" for v in r["ttft_p90_by_seed"])
            out.append(
                f"| {r['policy']} | {r['ttft_p90_s']:.3f} | {per} | {r['ttft_p99_s']:.3f} | "
                f"{r['output_tps']:.0f} | {_fmt('{:.0f}', r.get('preemptions', math.nan))} |"
            )
    out += ["", "TTFT p90 (s) over the ladder:", ""]
    rates = sorted({r["rate"] for r in runs})
    out.append(f"| {res['rate_unit']} | " + " | ".join(policies) + " |")
    out.append("|" + "---|" * (len(policies) + 1))
    for rate in rates:
        cells = []
        for p in policies:
            r = _at(runs, p, rate)
            cells.append("-" if r is None else f"{r['ttft_p90_s']:.3f}")
        out.append(f"| {rate:g} | " + " | ".join(cells) + " |")
    return out + [""] + _verdict_md(res.get("verdicts", []))


def _verdict_md(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    out = [f"- {'PASS' if c['pass'] else 'MISS'}: {c['check']}: {c['value']}" for c in checks]
    return out + [""] if out else []


def markdown(meta: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    policies: list[str] = list(meta["policies"])
    lines = [
        "# strata bench tier2",
        "",
        f"`{meta['command']}`: {meta['wall_s']} s wall ({meta.get('cpu_s', '?')} s CPU), "
        f"profile `{meta['profile']}`, "
        f"{meta['pods']} pods, seed {meta['seed']}, scale {meta['scale']}"
        f"{' (quick)' if meta['quick'] else ''}.",
        "",
    ]
    for key, res in results.items():
        if res["kind"] == "ladder":
            lines += _ladder_md(key, res, policies)
        elif res["kind"] == "scrape":
            lines += [f"### ({key}) {res['title']}", "", f"Rate {res['rate']:g} req/s.", ""]
            rows = [
                {**r, "label": f"{r['policy']} @ {1000 * r['scrape_interval_s']:g} ms"}
                for r in sorted(
                    res["runs"],
                    key=lambda r: (r["scrape_interval_s"], policies.index(r["policy"])),
                )
            ]
            lines += _metric_table(rows, "policy @ scrape", "label") + [""]
        elif res["kind"] == "pick":
            lines += [f"### ({key}) {res['title']}", ""]
            lines.append(
                "| policy | endpoints | pick p50 us | p90 | p99 | max | CPU p99 | build_request p50 us | p99 |"
            )
            lines.append("|---|---|---|---|---|---|---|---|---|")
            for r in res["rows"]:
                lines.append(
                    f"| {r['policy']} | {r['endpoints']} | {r['pick_p50_us']:.0f} | "
                    f"{r['pick_p90_us']:.0f} | {r['pick_p99_us']:.0f} | {r['pick_max_us']:.0f} | "
                    f"{r['pick_cpu_p99_us']:.0f} | {r['build_request_p50_us']:.0f} | "
                    f"{r['build_request_p99_us']:.0f} |"
                )
            lines += [""] + _verdict_md(res["verdicts"])
    return "\n".join(lines)


# --- files --------------------------------------------------------------------------


def write(out: Path, meta: Mapping[str, Any], results: Mapping[str, Any]) -> list[Path]:
    """Write results.json, summary.md and the plots; returns their paths."""
    from bench.tier2_bench.plots import plot_all

    doc = {"meta": dict(meta), "results": dict(results)}
    paths = [out / "results.json", out / "summary.md"]
    paths[0].write_bytes(jsonutil.dumps(_finite(doc), pretty=True) + b"\n")
    paths[1].write_text(markdown(meta, results) + "\n", encoding="utf-8")
    paths += plot_all(out, list(meta["policies"]), results)
    return paths


def _finite(v: Any) -> Any:
    """JSON has no NaN or infinity: write null."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v
