"""The processes of the end-to-end runs: the counting fake upstream, quota replicas
(`strata ratelimit --no-store`) and tier1 (`strata tier1`, one process or `--workers N`)
started from a snapshot file, with CPU pinning and niceness per process.

Built on bench.tier1_bench.procs (sessions, PR_SET_PDEATHSIG, logs, /proc readers).
Pinning and niceness are applied to every thread of a process (Linux applies both per
thread), so a worker's gRPC and resolver threads follow it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.ratelimit_bench.config import write_state
from bench.ratelimit_bench.probe import OUT_ENV
from bench.ratelimit_bench.upstream import COUNTS_PATH
from bench.tier1_bench.procs import (
    Child,
    Children,
    can_pin,
    free_port,
    http_get,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
STRATA = (sys.executable, "-m", "control.cli")
Say = Callable[[str], None]


def py_env(level: str = "WARNING") -> dict[str, str]:
    env = {**os.environ, "STRATA_LOG_LEVEL": level}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p
    )
    return env


def threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def pin_all(pid: int, cpu: int) -> None:
    """Pin every thread of `pid` to `cpu` (threads started later inherit it)."""
    if not can_pin():
        return
    for tid in threads(pid):
        try:
            os.sched_setaffinity(tid, {cpu})
        except OSError:
            pass


def renice_all(pid: int, nice: int) -> bool:
    """Set the niceness of every thread of `pid`; False if not permitted (not root)."""
    ok = True
    for tid in threads(pid):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except PermissionError:
            ok = False
        except OSError:
            pass
    return ok


@dataclass
class Replica:
    name: str
    address: str
    metrics_url: str
    child: Child


@dataclass
class Tier1:
    child: Child
    base: str
    workers: list[int] = field(default_factory=list)
    """Worker pids (`--workers N`); empty for a single process."""

    @property
    def url(self) -> str:
        return f"{self.base}/v1/chat/completions"


REPLICA_BOOST = 5
"""Quota replicas run this much ahead of everything else (lower niceness): a Sync
should be answered at once even while the other processes saturate the cores."""


class Stack:
    """One set of processes for the whole command: the fake upstream and the quota
    replicas start once (in parallel) and move between cores as the runs need."""

    def __init__(self, tmp: Path, say: Say, nice: int = 0) -> None:
        self.tmp = tmp
        self.say = say
        self.nice = nice
        self.children = Children(tmp, nice=nice)
        self.notes: list[str] = []
        self.upstream: Child | None = None
        self.upstream_base = ""
        self.replicas: dict[str, Replica] = {}

    def close(self) -> None:
        self.children.stop_all()

    def ensure(self, upstream_cpu: int, replicas: dict[str, int]) -> tuple[str, list[Replica]]:
        """The fake upstream on `upstream_cpu` and the replicas (name -> CPU), started
        if they are not running yet (all at once), else moved there. Returns the
        upstream's base URL and the replicas in the order given."""
        waits: list[tuple[Child, str, Callable[[], bool]]] = []
        if self.upstream is None:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "bench.ratelimit_bench.upstream", "--port", str(port)]
            child = self.children.start("upstream", cmd, cpu=upstream_cpu, env=py_env(), cwd=REPO)
            self.upstream, self.upstream_base = child, base
            waits.append((child, "answering", lambda: http_get(base + COUNTS_PATH)[0] == 200))
        else:
            _move(self.upstream, upstream_cpu)
        for name, cpu in replicas.items():
            if name in self.replicas:
                _move(self.replicas[name].child, cpu)
                continue
            port, mport = free_port(), free_port()
            address, metrics = f"127.0.0.1:{port}", f"http://127.0.0.1:{mport}"
            cmd = [*STRATA, "ratelimit", "--listen", address, "--metrics-port", str(mport)]
            child = self.children.start(name, [*cmd, "--no-store"], cpu=cpu, env=py_env(), cwd=REPO)
            self.replicas[name] = Replica(name, address, f"{metrics}/metrics", child)
            waits.append((child, "ready", _ready(metrics)))
        for child, what, probe in waits:
            wait_until(child, what, probe, 30)
            if child is not self.upstream:
                self._boost(child)
        self.say(
            f"fake upstream on CPU {upstream_cpu}; quota replicas "
            + ", ".join(f"{n} {self.replicas[n].address} (CPU {c})" for n, c in replicas.items())
        )
        return self.upstream_base, [self.replicas[n] for n in replicas]

    def _boost(self, child: Child) -> None:
        if not renice_all(child.pid, self.nice - REPLICA_BOOST):
            note = "no permission to lower the quota replicas' niceness: they run as the rest"
            if note not in self.notes:
                self.notes.append(note)

    def upstream_counts(self) -> dict[str, int]:
        status, body = http_get(self.upstream_base + COUNTS_PATH, timeout_s=5)
        if status != 200:
            raise RuntimeError(f"fake upstream counts: HTTP {status}")
        return {str(k): int(v) for k, v in orjson.loads(body).items()}

    # -- tier1 ----------------------------------------------------------------------------
    def start_tier1(
        self,
        name: str,
        wire: dict[str, Any],
        replicas: list[Replica],
        *,
        cpu: int | None,
        workers: int = 1,
        probe_out: Path | None = None,
    ) -> Tier1:
        """tier1 serving the snapshot `wire` from its state dir (control unreachable);
        with `probe_out`, through bench.ratelimit_bench.probe (the hook timed inside)."""
        state = self.tmp / f"{name}-state"
        node = f"bench-{name}"
        nodes = [node] if workers == 1 else [f"{node}-w{i}" for i in range(workers)]
        write_state(state, nodes, wire)
        port = free_port()
        launcher = [*STRATA, "tier1"]
        env = py_env()
        if probe_out is not None:
            launcher = [sys.executable, "-m", "bench.ratelimit_bench.probe"]
            env[OUT_ENV] = str(probe_out)
        cmd = [
            *launcher,
            "--port",
            str(port),
            "--node-id",
            node,
            "--state-dir",
            str(state),
            "--control",
            f"127.0.0.1:{free_port()}",  # nobody: tier1 serves the snapshot from disk
            "--ratelimit",
            ",".join(r.address for r in replicas),
            "--access-log",
            "off",
            "--workers",
            str(workers),
        ]
        log = self.tmp / f"{name}.log"
        start = log.stat().st_size if log.exists() else 0  # the log is appended to
        child = self.children.start(name, cmd, cpu=cpu, env=env, cwd=REPO)
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            listening = child.log.read_bytes()[start:].count(b" listening on http://")
            return listening >= workers and http_get(f"{base}/readyz")[0] == 200

        took = wait_until(child, f"ready ({workers} process(es) listening)", ready, 90, 0.1)
        child.refresh_tree()
        pids = [p for p in child.pids if p != child.pid and _is_worker(p)] if workers > 1 else []
        self.say(f"tier1 {name} ({workers} process(es)) on :{port} ready after {took:.1f} s")
        return Tier1(child, base, sorted(pids))

    def ours_cpu(self) -> tuple[float, float]:
        """CPU seconds of the pinned children on CPU 0 and on CPU 1 (for the share of
        each core that other processes on the machine took)."""
        on = [0.0, 0.0]
        for child in self.children.items:
            if child.cpu in (0, 1):
                on[child.cpu] += child.cpu_seconds()
        return on[0], on[1]

    def stop(self, name: str) -> None:
        self.children.stop_named(name)


def _move(child: Child, cpu: int) -> None:
    pin_all(child.pid, cpu)
    child.cpu = cpu


def _ready(metrics: str) -> Callable[[], bool]:
    return lambda: http_get(f"{metrics}/readyz")[0] == 200


def _is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def metrics_text(url: str, timeout_s: float = 5.0) -> str:
    status, body = http_get(url, timeout_s=timeout_s)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status}")
    return body.decode()
