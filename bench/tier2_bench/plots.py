"""PNG plots of the results (matplotlib, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first

__all__ = ["plot_all"]


def _series(
    runs: Sequence[Mapping[str, Any]], policy: str, x: str, y: str
) -> tuple[list[float], list[float]]:
    pts = sorted((r[x], r[y]) for r in runs if r["policy"] == policy and r[y] is not None)
    return [p[0] for p in pts], [p[1] for p in pts]


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _finish_single(ax: Any, key: str, res: Mapping[str, Any], xlabel: str, ylabel: str) -> None:
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"({key}) {res['title']}", fontsize=9)


def _ladder(path: Path, key: str, res: Mapping[str, Any], policies: Sequence[str]) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for p in policies:
        xs, ys = _series(res["runs"], p, "rate", "ttft_p90_s")
        if xs:
            ax1.plot(xs, ys, marker="o", label=p)
        xs, ys = _series(res["runs"], p, "rate", "output_tps")
        if xs:
            ax2.plot(xs, ys, marker="o", label=p)
    # closed loops (chat) offer what earlier answers let through: show the reference's
    ref = "gie-default" if "gie-default" in policies else policies[0]
    xs, ys = _series(res["runs"], ref, "rate", "offered_output_tps")
    ax2.plot(xs, ys, color="grey", linestyle=":", label=f"offered ({ref})")
    for ax in (ax1, ax2):
        if res.get("knee_rate") is not None:
            ax.axvline(res["knee_rate"], color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel(res["rate_unit"])
        ax.grid(True, alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_ylabel("TTFT p90 (s)")
    ax2.set_ylabel("output tokens/s")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.suptitle(f"({key}) {res['title']}", fontsize=9)
    _save(fig, path)


def _scrape(path: Path, key: str, res: Mapping[str, Any], policies: Sequence[str]) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for p in policies:
        xs, ys = _series(res["runs"], p, "scrape_interval_s", "ttft_p90_s")
        if xs:
            ax.plot(xs, ys, marker="o", label=p)
    ax.set_xscale("log")
    _finish_single(ax, key, res, "scrape interval (s)", "TTFT p90 (s)")
    _save(fig, path)


def _pick(path: Path, key: str, res: Mapping[str, Any]) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for p in sorted({r["policy"] for r in res["rows"]}):
        for q, style in (("pick_p50_us", "--"), ("pick_p99_us", "-")):
            xs, ys = _series(res["rows"], p, "endpoints", q)
            ax.plot(xs, [y / 1000 for y in ys], marker="o", linestyle=style, label=f"{p} {q[5:8]}")
    ax.set_xscale("log", base=2)
    _finish_single(ax, key, res, "endpoints", "pick latency (ms)")
    _save(fig, path)


def plot_all(out: Path, policies: Sequence[str], results: Mapping[str, Any]) -> list[Path]:
    """One PNG per scenario; returns the paths written."""
    paths = []
    for key, res in results.items():
        path = out / f"scenario_{key}.png"
        if res["kind"] == "ladder":
            _ladder(path, key, res, policies)
        elif res["kind"] == "scrape":
            _scrape(path, key, res, policies)
        elif res["kind"] == "pick":
            _pick(path, key, res)
        else:
            continue
        paths.append(path)
    return paths
