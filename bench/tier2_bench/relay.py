"""`strata bench tier2-relay`: tier2's CPU per streamed token against a bare aiohttp relay.

    strata bench tier2-relay [--streams 256] [--interval-ms 30] [--tokens 200]
                             [--seconds 20] [--rounds 3] [--out PATH]

A pod answers each request with ``--tokens`` tokens, one every ``--interval-ms`` per
stream (:mod:`bench.tier2_bench.relay_pod`, one write per token as vLLM does), and a
closed loop keeps ``--streams`` streams open, so the token rate is fixed by the pod
(streams / interval) whatever the proxy: what differs is the CPU each proxy spends.
Targets, measured one after the other in each round (rotating order):

- ``direct``: the client on the pod, to check the load reaches its rate;
- ``bare``: the bare aiohttp pass-through of the tier1 benchmark
  (:mod:`bench.tier1_bench.bareproxy`): ``iter_any`` and ``write``, nothing else, the
  reference for this machine;
- ``tier2``: ``strata tier2`` serving a pool of that one pod with the ``strata``
  profile (pick, ledger, prefix index, scrapes every 100 ms, the stream observer).

Reported per target: tokens/s received (SSE events: the tokens plus four per answer),
the proxy's CPU µs per token and per request,
and tier2's ratio to ``bare`` in the same round (the number to compare across
machines). Layout on 2 cores: the proxies on CPU 0 (an idle one costs nothing), the
pod and this driver (a lean HTTP/1.1 client) on CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.tier1_bench.load import Target, closed_loop
from bench.tier1_bench.procs import Children, can_pin, free_port, http_get, wait_until
from bench.tier2_bench.realtime import start_tier2
from bench.tier2_bench.realtime_client import MODEL
from common import jsonutil

__all__ = ["main", "summarize"]

PROXY_CPU, POD_CPU = 0, 1
TARGETS = ("direct", "bare", "tier2")


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Median over rounds of each target's numbers, with tier2's ratio to bare (pure)."""
    out: dict[str, dict[str, float]] = {}
    for name in TARGETS:
        rows = [r[name] for r in rounds if name in r]
        if not rows:
            continue
        out[name] = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
    ratios = [
        r["tier2"]["cpu_us_per_token"] / r["bare"]["cpu_us_per_token"]
        for r in rounds
        if "tier2" in r and "bare" in r and r["bare"]["cpu_us_per_token"] > 0
    ]
    if ratios:
        out["tier2"]["ratio_to_bare"] = statistics.median(ratios)
    return out


def _row(res: dict[str, Any], tokens: int) -> dict[str, float]:
    events = res["events"] or 1
    return {
        "tokens_per_s": res["events_per_s"],
        "requests_per_s": res["completed"] / res["seconds"],
        "cpu_busy": res["sut_busy"],
        "cpu_us_per_token": res["sut_cpu_s"] / events * 1e6,
        # events per answer: the role chunk, the tokens, finish, usage and [DONE]
        "cpu_us_per_request": res["sut_cpu_s"] / events * (tokens + 4) * 1e6,
        "errors": res["errors"],
    }


def markdown(doc: dict[str, Any]) -> str:
    a = doc["args"]
    lines = [
        "# tier2 relay: CPU per streamed token",
        "",
        f"{a['streams']} streams, a token every {a['interval_ms']} ms each, {a['tokens']} "
        f"tokens per request; {a['seconds']} s per target, median of {a['rounds']} rounds.",
        "",
        "| target | tokens/s | CPU busy | CPU µs/token | CPU µs/request | ratio to bare | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in doc["summary"].items():
        ratio = f"{r['ratio_to_bare']:.2f}" if "ratio_to_bare" in r else "-"
        cpu = "-" if name == "direct" else f"{r['cpu_busy']:.2f}"
        per_tok = "-" if name == "direct" else f"{r['cpu_us_per_token']:.1f}"
        per_req = "-" if name == "direct" else f"{r['cpu_us_per_request']:.0f}"
        lines.append(
            f"| {name} | {r['tokens_per_s']:.0f} | {cpu} | {per_tok} | {per_req} | {ratio} "
            f"| {r['errors']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet() -> dict[str, str]:
    return {**os.environ, "STRATA_LOG_LEVEL": "WARNING"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="strata-relay-") as tmpdir:
        tmp = Path(tmpdir)
        children = Children(tmp)
        try:
            pod_port = free_port()
            cmd = [sys.executable, "-m", "bench.tier2_bench.relay_pod", "--port", str(pod_port)]
            cmd += ["--model", MODEL, "--interval-ms", str(args.interval_ms)]
            pod = children.start("pod", cmd, cpu=POD_CPU, env=_quiet())
            pod_url = f"http://127.0.0.1:{pod_port}"
            wait_until(pod, "serving", lambda: http_get(f"{pod_url}/metrics")[0] == 200, 30)
            bare_port = free_port()
            cmd = [sys.executable, "-m", "bench.tier1_bench.bareproxy", "--port", str(bare_port)]
            cmd += ["--upstream", pod_url]
            bare = children.start("bare", cmd, cpu=PROXY_CPU, env=_quiet())
            bare_url = f"http://127.0.0.1:{bare_port}"
            wait_until(bare, "serving", lambda: http_get(f"{bare_url}/healthz")[0] != 0, 30)
            pod_address = f"127.0.0.1:{pod_port}"
            tier2_url, tier2 = start_tier2(
                children,
                "strata",
                [pod_address],
                tmp,
                speed=1.0,
                scrape_s=0.1,
                cpu=PROXY_CPU,
                env=_quiet(),
            )
            urls = {"direct": pod_url, "bare": bare_url, "tier2": tier2_url}
            cpus = {"direct": pod.cpu_seconds, "bare": bare.cpu_seconds, "tier2": tier2.cpu_seconds}
            targets = {
                name: Target(
                    name,
                    urls[name] + "/v1/chat/completions",
                    {},
                    MODEL,
                    cpus[name],
                    include_usage=True,
                    max_tokens=args.tokens,
                )
                for name in TARGETS
            }
            rounds: list[dict[str, dict[str, Any]]] = []
            for n in range(args.rounds):
                order = TARGETS[n % 3 :] + TARGETS[: n % 3]
                row: dict[str, dict[str, Any]] = {}
                for name in order:
                    res = asyncio.run(_measure(targets[name], args))
                    row[name] = _row(res, args.tokens)
                    _log(
                        f"round {n + 1}/{args.rounds} {name}: {row[name]['tokens_per_s']:.0f} "
                        f"tok/s, {row[name]['cpu_us_per_token']:.1f} CPU µs/token, "
                        f"{row[name]['errors']:.0f} errors"
                    )
                rounds.append(row)
        finally:
            children.stop_all()
    return {"rounds": rounds, "summary": summarize(rounds)}


async def _measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    return await closed_loop(
        target,
        stream=True,
        concurrency=args.streams,
        warmup_s=args.warmup_s,
        seconds=args.seconds,
        drain_s=30.0,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="strata bench tier2-relay", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--streams", type=int, default=256, help="streams kept open (default 256)")
    p.add_argument("--interval-ms", type=float, default=30.0, help="ms between tokens per stream")
    p.add_argument("--tokens", type=int, default=200, help="tokens per answer (default 200)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per target")
    p.add_argument("--warmup-s", type=float, default=5.0, help="seconds before measuring")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=".strata/bench/tier2-relay", help="path without suffix")
    args = p.parse_args(argv)
    for name in ("streams", "interval_ms", "tokens", "seconds", "rounds"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.warmup_s < 0:
        p.error("--warmup-s must not be negative")
    if not can_pin():
        _log("fewer than 2 CPUs: the proxies and the load share cores; numbers are rough")
    t0 = time.monotonic()
    doc = run(args)
    doc["args"] = vars(args)
    doc["wall_s"] = time.monotonic() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_bytes(jsonutil.dumps(doc, pretty=True))
    md = markdown(doc)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
