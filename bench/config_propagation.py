"""`strata bench config-propagation`: how fast a config write reaches every node.

Layout on a 2-core machine (each process pinned with sched_setaffinity):
  core 0: etcd (fsync on) and one control replica (`strata control`)
  core 1: N subscribed nodes (asyncio tasks in one process, each a real gRPC stream
          with its own ConfigAgent) and this driver, which makes the API writes.

Phase 1 (propagation): `--writes` writes, one every `--interval-ms`; for each write,
the time from the API acknowledging it to the last node's ACK of that revision (or a
newer one, since control coalesces bursts). Nodes stamp their ACK with CLOCK_MONOTONIC,
which is system-wide on Linux, so the driver can compare stamps across processes.
Phase 2 (throughput): `--concurrency` clients replace resources as fast as control
accepts them for `--seconds`; sustained writes per second, all nodes still subscribed.

Prints a one-line summary and writes a JSON record (default .strata/bench/).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from common import jsonutil
from control.embedded import EmbeddedEtcd, free_port

TOKEN = "st-bench-token"


def _pin(cpu: int) -> Any:
    def preexec() -> None:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
            os.sched_setaffinity(0, {cpu})

    return preexec


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


# -- the nodes process ---------------------------------------------------------------------
async def run_nodes(n: int, control: str, out: Path) -> None:
    from common.configsync import ConfigAgent, ConfigSubscriber, NodeIdentity

    acks: dict[str, list[tuple[int, float]]] = {}
    subs = []
    for i in range(n):
        node_id = f"bench-node-{i}"
        log = acks.setdefault(node_id, [])

        def build(snapshot: Any, log: list[tuple[int, float]] = log) -> Any:
            log.append((snapshot.revision, time.monotonic()))
            return snapshot

        agent: ConfigAgent[Any] = ConfigAgent("tier1", build)
        sub = ConfigSubscriber([control], NodeIdentity(node_id, "tier1", f"bench:{i}"), agent)
        sub.start()
        subs.append(sub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("nodes started", flush=True)
    await stop.wait()
    for sub in subs:
        await sub.stop()
    await asyncio.to_thread(out.write_bytes, jsonutil.dumps(acks))


# -- the driver ------------------------------------------------------------------------------
def _backend(i: int, connect_s: float = 5.0) -> dict[str, Any]:
    return {
        "kind": "Backend",
        "name": f"bench-{i}",
        "spec": {
            "schema": "openai",
            "base_url": f"http://127.0.0.1:{9000 + i}/v1",
            "timeouts": {"connect_s": connect_s},
        },
    }


async def _wait_nodes(
    session: aiohttp.ClientSession, rest: str, n: int, timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with session.get(
            f"{rest}/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r:
            st = await r.json()
        if sum(1 for node in st["nodes"] if node["in_sync"]) >= n:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{n} nodes did not connect within {timeout_s}s")


async def drive(args: argparse.Namespace, rest: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    writes: list[tuple[int, float]] = []
    async with aiohttp.ClientSession(headers=headers) as s:
        await _wait_nodes(s, rest, args.nodes)
        # phase 1: spaced writes, each one's propagation measured on its own
        for i in range(args.writes):
            doc = _backend(i % 20, connect_s=1.0 + (i % 7) + i / 1000)
            async with s.post(f"{rest}/v1/apply", json={"documents": [doc]}) as r:
                body = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"write {i} failed: {r.status} {body}")
            writes.append((int(body["results"][0]["revision"]), time.monotonic()))
            if (i + 1) % 50 == 0:
                print(f"  propagation: {i + 1}/{args.writes} writes", flush=True)
            await asyncio.sleep(args.interval_ms / 1000)
        await asyncio.sleep(1.0)  # let the last ACKs arrive
        # phase 2: sustained throughput
        done = 0
        errors = 0
        end = time.monotonic() + args.seconds

        async def writer(w: int) -> None:
            nonlocal done, errors
            k = 0
            while time.monotonic() < end:
                doc = _backend(20 + (w * 5 + k % 5), connect_s=1.0 + (k % 50) / 10)
                async with s.post(f"{rest}/v1/apply", json={"documents": [doc]}) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
                    else:
                        errors += 1
                k += 1

        t0 = time.monotonic()
        print(f"  throughput: {args.concurrency} writers for {args.seconds:.0f}s", flush=True)
        await asyncio.gather(*(writer(w) for w in range(args.concurrency)))
        elapsed = time.monotonic() - t0
    return {
        "writes": writes,
        "throughput_writes": done,
        "throughput_errors": errors,
        "throughput_s": elapsed,
    }


def analyse(
    writes: list[tuple[int, float]], acks: dict[str, list[tuple[int, float]]]
) -> dict[str, Any]:
    latencies = []
    missing = 0
    for revision, acked_at in writes:
        worst = 0.0
        for log in acks.values():
            t = next((t for rev, t in log if rev >= revision), None)
            if t is None:
                missing += 1
                worst = float("inf")
                break
            worst = max(worst, t - acked_at)
        if worst != float("inf"):
            latencies.append(max(0.0, worst) * 1000)
    return {
        "p50_ms": _percentile(latencies, 50),
        "p99_ms": _percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
        "measured_writes": len(latencies),
        "writes_never_acked_by_all": missing,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="strata bench config-propagation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--writes", type=int, default=200)
    p.add_argument(
        "--interval-ms",
        type=float,
        default=100.0,
        help="pause between propagation writes, so each write is measured on its own "
        "(the throughput phase measures bursts)",
    )
    p.add_argument("--concurrency", type=int, default=8, help="writers in the throughput phase")
    p.add_argument("--seconds", type=float, default=5.0, help="length of the throughput phase")
    p.add_argument("--out", default=".strata/bench/config-propagation.json")
    p.add_argument("--profile-control", help="write a cProfile of the control process to this file")
    p.add_argument("--role", choices=["driver", "nodes"], default="driver", help=argparse.SUPPRESS)
    p.add_argument("--control", help=argparse.SUPPRESS)
    p.add_argument("--acks-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "nodes":
        asyncio.run(run_nodes(args.nodes, args.control, Path(args.acks_file)))
        return 0
    return _run_driver(args)


def _run_driver(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="strata-bench-"))
    etcd = EmbeddedEtcd(tmp / "etcd", client_port=free_port())
    rest_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "STRATA_ADMIN_TOKEN": TOKEN, "STRATA_LOG_LEVEL": "WARNING"}
    procs: list[subprocess.Popen[bytes]] = []
    acks_file = tmp / "acks.json"
    print(
        f"config propagation: {args.nodes} nodes (asyncio tasks in one process, core 1), "
        f"control + etcd on core 0",
        flush=True,
    )
    try:
        etcd.start()
        if (
            etcd.process is not None
            and hasattr(os, "sched_setaffinity")
            and (os.cpu_count() or 1) > 1
        ):
            os.sched_setaffinity(etcd.process.pid, {0})
        control = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "control.cli",
                "control",
                "--etcd-endpoints",
                etcd.endpoint,
                "--rest-port",
                str(rest_port),
                "--grpc-port",
                str(grpc_port),
                "--node-id",
                "bench-control",
                "--data-dir",
                str(tmp),
            ],
            env=env,
            preexec_fn=_pin(0),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(control)
        rest = f"http://127.0.0.1:{rest_port}"
        _wait_http(f"{rest}/readyz", control)
        nodes = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.config_propagation",
                "--role",
                "nodes",
                "--nodes",
                str(args.nodes),
                "--control",
                f"127.0.0.1:{grpc_port}",
                "--acks-file",
                str(acks_file),
            ],
            env=env,
            preexec_fn=_pin(1),
            stdout=subprocess.DEVNULL,
        )
        procs.append(nodes)
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})
        result = asyncio.run(drive(args, rest))
        nodes.send_signal(signal.SIGTERM)
        nodes.wait(30)
        acks = jsonutil.loads(acks_file.read_bytes())
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        etcd.stop()
    stats = analyse(result["writes"], acks)
    rate = result["throughput_writes"] / result["throughput_s"]
    record = {
        "benchmark": "config-propagation",
        "nodes": args.nodes,
        "node_kind": "asyncio tasks in one process",
        "writes": args.writes,
        "interval_ms": args.interval_ms,
        "propagation": stats,
        "throughput": {
            "writes_per_s": rate,
            "writes": result["throughput_writes"],
            "errors": result["throughput_errors"],
            "concurrency": args.concurrency,
            "seconds": result["throughput_s"],
        },
        "targets": {"p99_ms": 100, "writes_per_s": 200},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(jsonutil.dumps(record, pretty=True))
    print(
        f"config-propagation: {args.nodes} nodes, {stats['measured_writes']} writes: write-ack→all-nodes-ack "
        f"p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms, max {stats['max_ms']:.1f} ms "
        f"(target p99 ≤ 100); sustained {rate:.0f} writes/s (target ≥ 200); JSON in {out}"
    )
    return 0


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    from urllib.error import URLError
    from urllib.request import urlopen

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urlopen(url, timeout=0.5) as r:
                if r.status == 200:
                    return
        except (URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not become ready")
        time.sleep(0.05)  # noqa: TID251 - synchronous setup before the measured phase


if __name__ == "__main__":
    sys.exit(main())
