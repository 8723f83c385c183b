"""Pure arithmetic of the rate-limit benchmark: Prometheus text → samples and
histograms, the accuracy rows, the hot-path comparisons (with the A-vs-A' noise band)
and the verdicts."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.tier1_bench.stats import Verdict, verdict

Labels = tuple[tuple[str, str], ...]


def samples(text: str) -> dict[tuple[str, Labels], float]:
    """Every sample of a /metrics answer by (sample name, sorted labels)."""
    out: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def sample(values: Mapping[tuple[str, Labels], float], name: str, **labels: str) -> float:
    """One sample's value; NaN when absent."""
    return values.get((name, tuple(sorted(labels.items()))), math.nan)


def labelled(
    values: Mapping[tuple[str, Labels], float], name: str
) -> list[tuple[dict[str, str], float]]:
    return [(dict(lab), v) for (n, lab), v in values.items() if n == name]


@dataclass(frozen=True, slots=True)
class Histogram:
    buckets: tuple[tuple[float, float], ...]
    """(upper bound, cumulative count), ascending; the last bound is +inf."""
    count: float
    total: float

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """Prometheus' histogram_quantile: linear inside the bucket that holds rank
        q·count; the highest finite bound when the rank falls in the +Inf bucket."""
        if not self.count or not self.buckets:
            return math.nan
        rank = q * self.count
        prev_bound, prev_count = 0.0, 0.0
        for bound, cum in self.buckets:
            if cum >= rank:
                if math.isinf(bound):
                    return prev_bound
                if cum == prev_count:
                    return bound
                return prev_bound + (bound - prev_bound) * (rank - prev_count) / (cum - prev_count)
            prev_bound, prev_count = bound, cum
        return prev_bound


def histogram(values: Mapping[tuple[str, Labels], float], name: str) -> Histogram | None:
    buckets = sorted(
        (float(lab["le"]), v) for lab, v in labelled(values, name + "_bucket") if "le" in lab
    )
    count = sample(values, name + "_count")
    if not buckets or math.isnan(count):
        return None
    return Histogram(tuple(buckets), count, sample(values, name + "_sum"))


def merge(histograms: Iterable[Histogram]) -> Histogram | None:
    """Sum of histograms with the same bounds (one per tier1 worker)."""
    items = list(histograms)
    if not items:
        return None
    bounds = [b for b, _ in items[0].buckets]
    if any([b for b, _ in h.buckets] != bounds for h in items):
        raise ValueError("histograms with different buckets")
    cums = [sum(h.buckets[i][1] for h in items) for i in range(len(bounds))]
    return Histogram(
        tuple(zip(bounds, cums, strict=True)),
        sum(h.count for h in items),
        sum(h.total for h in items),
    )


# -- accuracy ---------------------------------------------------------------------------


def accuracy_row(what: str, limit: float, admitted: float, **extra: Any) -> dict[str, Any]:
    """Overshoot (admitted above the limit, % of it; 0 when below) and utilisation."""
    over = (admitted - limit) / limit * 100 if limit else math.nan
    return {
        "what": what,
        "limit": limit,
        "admitted": admitted,
        "overshoot_pct": max(0.0, over) if not math.isnan(over) else over,
        "utilisation_pct": admitted / limit * 100 if limit else math.nan,
        **extra,
    }


def milestones(timeline: Sequence[tuple[float, int, int]], limit: float) -> dict[str, float]:
    """From samples (seconds into the run, admitted so far, 429s so far): when 99 % of
    the final admitted count was reached (the budget ran out), the last admission, and
    the first 429 with the share of the limit admitted by then (a 429 while budget is
    left means a worker's lease ran dry before the global budget did). NaN: never."""
    nan = math.nan
    out = {"t99_s": nan, "last_admit_s": nan, "first_429_s": nan, "used_at_first_429": nan}
    if not timeline:
        return out
    final = timeline[-1][1]
    for t, ok, rejected in timeline:
        if math.isnan(out["t99_s"]) and ok >= 0.99 * final:
            out["t99_s"] = t
        if math.isnan(out["last_admit_s"]) and ok >= final:
            out["last_admit_s"] = t
        if math.isnan(out["first_429_s"]) and rejected > 0:
            out["first_429_s"] = t
            out["used_at_first_429"] = ok / limit if limit else nan
    return out


def token_estimate(body_bytes: int, max_tokens: int, weights: Mapping[str, float]) -> float:
    """What tier1 reserves for one request (its estimate: body bytes / 4 + 1 prompt
    tokens, max_tokens output), weighted like the policy."""
    est_in = body_bytes // 4 + 1
    terms = {"input": est_in, "output": max_tokens, "total": est_in + max_tokens}
    return sum(w * terms.get(t, 0) for t, w in weights.items())


# -- hot path ---------------------------------------------------------------------------


def per_round(
    rounds: Sequence[Mapping[str, Mapping[str, Any]]], key: str, a: str, b: str, *, ratio: bool
) -> list[float]:
    """Per round: b/a (ratio) or b − a of `key`."""
    vals = []
    for r in rounds:
        x, y = float(r[a][key]), float(r[b][key])
        vals.append(y / x if ratio and x else y - x)
    return vals


def typical(values: Sequence[float], center: float = 0.0) -> float:
    """The median distance of `values` from `center`: how far apart two measurements of
    the same thing typically are on this machine."""
    finite = [abs(v - center) for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def not_worse(
    name: str,
    added: Sequence[float],
    noise: Sequence[float],
    *,
    center: float,
    threshold: float,
    higher_is_worse: bool,
) -> Verdict:
    """PASS when the median effect of the limits (B vs A, per round) is no worse than
    `threshold`, or than the typical A-vs-A' gap when that is larger: a change the
    machine's own noise is as big as cannot be told apart from it."""
    if not added:
        return verdict(name, math.nan, "<=", threshold)
    med = statistics.median(added)
    worse = med - center if higher_is_worse else center - med
    band = typical(noise, center)
    limit = threshold if math.isnan(band) else max(threshold, band)
    worse_rounds = sum(1 for v in added if (v > center) == higher_is_worse and v != center)
    return verdict(
        name,
        worse,
        "<=",
        limit,
        note=f"typical noise ±{band:.3g}; B worse than A in {worse_rounds}/{len(added)} rounds",
    )


def hotpath_verdicts(
    micro: Mapping[str, Any] | None, e2e: Mapping[str, Any] | None
) -> list[Verdict]:
    out: list[Verdict] = []
    if micro is not None:
        out.append(
            verdict("added µs p50, admit + settle (in-process)", micro["added_p50_us"], "<=", 50.0)
        )
    if e2e is not None:
        situ = e2e.get("in_situ") or {}
        out.append(
            verdict(
                "added µs p50, admit + settle inside tier1 (probe)",
                float(situ.get("added_wall_p50_us", math.nan)),
                "<=",
                50.0,
            )
        )
        added, noise = e2e["open"]["p50_ms_diff"]["rounds"]
        out.append(
            not_worse(
                "added ms p50 end to end (open loop): ≤ 0.05 ms or within noise",
                added,
                noise,
                center=0.0,
                threshold=0.05,
                higher_is_worse=True,
            )
        )
        added, noise = e2e["closed"]["rps_ratio"]["rounds"]
        out.append(
            not_worse(
                "tier1 max requests/s lost, 1 − m-limited ÷ m-free: within noise",
                added,
                noise,
                center=1.0,
                threshold=0.0,
                higher_is_worse=False,
            )
        )
    return out


def accuracy_verdicts(rows: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    out = []
    for row in rows:
        out.append(verdict(f"{row['what']} overshoot %", row["overshoot_pct"], "<=", 1.0))
        out.append(verdict(f"{row['what']} utilisation %", row["utilisation_pct"], ">=", 95.0))
    return out
