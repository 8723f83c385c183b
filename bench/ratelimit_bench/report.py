"""The benchmark record → markdown (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _n(x: Any, fmt: str = ",.0f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, fmt)


def _spread(s: Mapping[str, Any], fmt: str = ".2f", sign: bool = False) -> str:
    if not s or s.get("median") is None or math.isnan(s["median"]):
        return "—"
    f = ("+" if sign else "") + fmt
    return f"{s['median']:{f}} ({s['min']:{f}}…{s['max']:{f}})"


def markdown(record: Mapping[str, Any]) -> str:
    out = [f"# Rate-limit benchmark — {record['when']}", ""]
    m = record["machine"]
    out.append(
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, load average at start "
        f"{m['loadavg']}. Command: `{record['command']}`; wall time {record['wall_s']:.0f} s."
    )
    out.append("")
    if record.get("micro"):
        out += _micro(record["micro"])
    if record.get("e2e"):
        out += _e2e(record["e2e"], record["e2e_config"])
    if record.get("accuracy"):
        out += _accuracy(record["accuracy"])
    out += ["## Targets", "", "| target | measured | limit | verdict |", "|---|---|---|---|"]
    for v in record["verdicts"]:
        note = f" ({v['note']})" if v.get("note") else ""
        value = "—" if v["value"] is None else f"{v['value']:.2f}"
        out.append(
            f"| {v['name']} | {value} | {v['op']} {v['threshold']:.3g} | **{v['outcome']}**{note} |"
        )
    out.append("")
    if record.get("notes"):
        out += ["## Notes", ""] + [f"- {n}" for n in record["notes"]] + [""]
    return "\n".join(out)


def _micro(mi: Mapping[str, Any]) -> list[str]:
    out = [
        "## Hot path, in process: `GlobalQuota.admit` + `settle` vs `NoQuota`",
        "",
        f"{mi['rounds']} interleaved rounds × {mi['requests_per_round']:,} requests per hook "
        "(perf_counter_ns per request; a real QuotaClient leasing from an in-process "
        "RateLimitServer; one policy, one requests and one tokens limit).",
        "",
        "| hook | p50 µs | p90 µs | p99 µs | mean µs | p50 per round | CPU µs/req per round |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("no_quota", "NoQuota"), ("global_quota", "GlobalQuota")):
        h = mi[name]
        out.append(
            f"| {label} | {h['p50_us']:.2f} | {h['p90_us']:.2f} | {h['p99_us']:.2f} | "
            f"{h['mean_us']:.2f} | {_spread(h['round_p50_us'])} | {_spread(h['cpu_us_per_req'])} |"
        )
    out.append(
        f"| **added** | **{mi['added_p50_us']:.2f}** | | {mi['added_p99_us']:.2f} | | "
        f"{_spread(mi['added_p50_us_per_round'])} | {_spread(mi['added_cpu_us_per_round'])} |"
    )
    out += [
        "",
        "Per-round columns: median (min…max) across rounds. *CPU µs/req* is the thread's "
        "CPU time over a round ÷ requests (the loop's yield to the event loop included, "
        "the same for both hooks): time the process was preempted does not count, so it is "
        "steadier than the wall-clock percentiles on a shared machine; p99 by wall clock "
        "includes preemption, which lands more often in longer samples.",
        "",
        f"Network waits on the request path (`QuotaClient.sync_now`): "
        f"{mi['sync_now_calls_measured']} in {mi['measured_requests']:,} measured requests "
        f"(warm-up: {mi['sync_now_calls_warmup']}); the replica answered "
        f"{mi['server_syncs_answered']:.0f} background Syncs in all.",
        "",
    ]
    return out


def _e2e(e: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[str]:
    c, o, b = e["closed"], e["open"], e["bursty"]
    labels = {"free": "m-free (A)", "limited": "m-limited (B)", "free_again": "m-free again (A')"}
    rate = f"{o['rate']:g}"
    out = [
        "## Hot path, end to end: one tier1 process",
        "",
        f"{cfg['placement']}. {cfg['rounds']} rounds; in each, one {cfg['phase_s']:g} s phase "
        f"per model (order rotating, each after a {cfg['warmup_s']:g} s warm-up): closed loop "
        f"with c={cfg['concurrency']}, then open loop at {rate} req/s. Medians across rounds.",
        "",
        f"| model | max req/s | tier1 CPU µs/req (max rate) | p50 ms @{rate}/s | p99 ms "
        f"@{rate}/s | tier1 CPU µs/req @{rate}/s |",
        "|---|---|---|---|---|---|",
    ]
    for n, label in labels.items():
        out.append(
            f"| {label} | {_n(c['rps'][n])} | {_n(c['cpu_us_per_req'][n])} | "
            f"{o['p50_ms'][n]:.3f} | {o['p99_ms'][n]:.3f} | {_n(o['cpu_us_per_req'][n])} |"
        )
    for part, label in (("added", "**B vs A**"), ("noise", "A' vs A (noise)")):
        out.append(
            f"| {label} | ×{_spread(c['rps_ratio'][part], '.3f')} | "
            f"{_spread(c['cpu_us'][part], '.0f', True)} | "
            f"{_spread(_ms_to_us(o['p50_ms_diff'][part]), '.0f', True)} µs | "
            f"{_spread(_ms_to_us(o['p99_ms_diff'][part]), '.0f', True)} µs | "
            f"{_spread(o['cpu_us'][part], '.0f', True)} |"
        )
    waits = e.get("lease_waits", math.nan)
    out += [
        "",
        "Difference rows: median (min…max) across rounds of B/A or B − A per round (A' − A: "
        "the same model twice, i.e. the machine's noise). "
        f"The quota replica answered {e['quota_syncs']:.0f} Syncs while tier1 admitted "
        f"{e['limited_requests_allowed']:,.0f} m-limited requests"
        + ("." if math.isnan(waits) else f"; {waits:,.0f} admissions waited for a Sync."),
        "",
        *_in_situ(e.get("in_situ") or {}),
        *_bursty(b),
    ]
    return out


def _bursty(b: Mapping[str, Any]) -> list[str]:
    if not b:
        return []
    return [
        f"Bursty key (1 s slices taking turns, no warm-up per slice: m-limited's key idles "
        f"2 s, past the 1 s after which tier1 returns an idle allotment): p50 "
        f"{b['p50_ms']['free']:.3f} / {b['p50_ms']['limited']:.3f} / "
        f"{b['p50_ms']['free_again']:.3f} ms (A / B / A'), added "
        f"{b['added_p50_ms'] * 1000:+.0f} µs p50 and {b['added_p99_ms'] * 1000:+.0f} µs p99 "
        f"(noise {b['noise_p50_ms'] * 1000:+.0f} / {b['noise_p99_ms'] * 1000:+.0f} µs).",
        "",
    ]


def _in_situ(p: Mapping[str, Any]) -> list[str]:
    """The probe's table: the hook timed inside the tier1 process of these runs."""
    admit = p.get("admit") or {}
    if "added_wall_p50_us" not in p:
        return ["The in-server timing of the hook is missing (the probe wrote nothing).", ""]
    rows = [
        ("admit, m-free (finds no policy)", admit["free"]),
        ("admit, m-limited", admit["limited"]),
        ("settle, m-limited", p["settle"]),
    ]
    out = [
        "Inside tier1 (bench.ratelimit_bench.probe wraps the hook in the server above, all "
        "phases; admissions that waited for a Sync are counted apart):",
        "",
        "| | calls | wall p50 µs | wall p99 µs | CPU mean µs | waited for a Sync |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        out.append(
            f"| {label} | {r['n']:,} | {r['wall_p50_us']:.1f} | {r['wall_p99_us']:.1f} | "
            f"{r['cpu_mean_us']:.1f} | {_n(r.get('waited'))} |"
        )
    out += [
        f"| **added** (≈ m-limited − m-free + settle) | | **{p['added_wall_p50_us']:.1f}** | "
        f"{p['added_wall_p99_us']:.1f} | {p['added_cpu_mean_us']:.1f} | |",
        "",
    ]
    return out


def _ms_to_us(s: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v * 1000 if k in ("median", "min", "max") else v) for k, v in s.items()}


def _accuracy(a: Mapping[str, Any]) -> list[str]:
    s = a["sizing"]
    out = [
        "## Accuracy: 4 tier1 workers, 2 quota replicas, one key at max rate",
        "",
        f"{a['workers']} workers (`strata tier1 --workers {a['workers']}`), {a['replicas']} "
        f"replicas (`strata ratelimit --no-store`), {a['concurrency']} keep-alive connections "
        f"on one consumer for {a['run_s']:.0f} s. Placement: {a['placement']}.",
        f"Calibration: {s['calibrated_rps']:,.0f} admitted req/s → limits {s['requests']:,} "
        f"requests and {s['tokens']:,} tokens (`{s['token_cost']}`, {s['cost_per_request']:g} "
        f"per request as the fake reports it; tier1 reserves {s['estimate_per_request']:g}) "
        f"per `{a['window']}` window (does not roll during the run).",
        "",
        "| | limit | admitted (client 2xx) | fake upstream received | replicas consumed "
        "| overshoot % | utilisation % | stated bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in a["rows"]:
        out.append(
            f"| {r['what']} | {r['limit']:,.0f} | {r['admitted']:,.0f} | "
            f"{r['upstream_received']:,.0f} | {_n(r['service_consumed'])} | "
            f"{r['overshoot_pct']:.2f} | {r['utilisation_pct']:.2f} | {r['bound']:,.0f} |"
        )
    cl = a["client"]
    frac = a["exhausted_at_fraction"]
    lag = a.get("reconcile_lag") or {}
    per = ", ".join(_n(w["allowed"]) for w in a["per_worker"])
    waits = [w.get("lease_waits", math.nan) for w in a["per_worker"]]
    if not any(math.isnan(x) for x in waits) and waits:
        per += f" (admissions that waited for a Sync: {', '.join(_n(x) for x in waits)})"
    out += [
        "",
        f"Client: {cl['2xx']:,} 2xx, {cl['429']:,} 429, other: "
        f"{ {k: v for k, v in cl['other'].items() if k != 'HTTP 429'} or 'none' }. "
        f"The budget ran out (99 % of the final admitted count) {a['t99_s']:.1f} s into "
        f"the run ({'—' if math.isnan(frac) else f'{frac:.0%}'} of it); the first 429 came "
        f"at {a['first_429_s']:.1f} s with {a['used_at_first_429']:.1%} of the requests "
        f"limit admitted; the last admission at {a['last_admit_s']:.1f} s.",
        f"Bound: {a['bound_note']}.",
        f"Reconciliation lag (strata_ratelimit_reconcile_lag_seconds, {a['workers_scraped']} "
        f"workers, {lag.get('count', 0):,.0f} observations): mean "
        f"{_ms(lag.get('mean_s'))}, p50 {_ms(lag.get('p50_s'))}, p99 {_ms(lag.get('p99_s'))} "
        "(percentiles interpolated within histogram buckets).",
        f"Admitted per worker: {per}.",
        "",
    ]
    return out


def _ms(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{x * 1000:.0f} ms"
