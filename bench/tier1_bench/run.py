"""`strata bench tier1`: tier1 against a bare aiohttp proxy and LiteLLM on one core.

Layout on a 2-core machine (affinity set with sched_setaffinity when the child starts):
  CPU 0: the systems under test, all running at once on their own ports and measured
         one after the other (an idle one costs ~nothing): tier1 (auth, routing,
         metrics and its access log to a file on), the bare aiohttp pass-through proxy,
         and LiteLLM proxy (one worker).
  CPU 1: the fake upstream, this driver (the load generator: aiohttp + uvloop), and
         etcd + control, which are idle once the configuration is applied.

Each round runs, for every target in a rotating order: (1) closed loop, non-streaming,
`--concurrency` workers → max requests/s and the target's CPU µs per request; (2) the
same streaming (`--chunks` content chunks each) → streams/s and chunks/s; (3) open loop
at `--rate` requests/s, latency from the scheduled send time → p50/p99, and "added"
latency = target − direct in the same round; in the open loop the targets take turns in
1 s slices, so a burst of other work on the machine hits them alike. The closed loops use
a lean HTTP/1.1 client (`--client raw`; aiohttp's costs as much CPU 1 as the bare proxy
costs CPU 0, which would cap the reference proxy at CPU 1's speed). A target that cannot sustain `--rate`
(LiteLLM) is measured at `--fallback-rate` instead, or at half its max requests/s of that
round when that is lower, with direct at the same rate in the same round.
Results: median (min–max) across rounds, JSON to `--out` and markdown beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from bench.tier1_bench import litellm_env, report
from bench.tier1_bench.load import Target, closed_loop, one_request, open_loop, request_body
from bench.tier1_bench.procs import (
    Child,
    Children,
    StartFailed,
    can_pin,
    free_port,
    http_get,
    http_post,
    pin,
    wait_until,
)
from bench.tier1_bench.stats import Spread

ADMIN_TOKEN = "st-bench-tier1-admin"
MODEL = "bench-model"
UPSTREAM_KEY = "sk-upstream"
REPO = Path(__file__).resolve().parents[2]
SUT_CPU = 0
AUX_CPU = 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="strata bench tier1",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--seconds", type=float, default=5.0, help="closed-loop window (default 5)")
    p.add_argument("--open-seconds", type=float, default=10.0, help="open-loop window (default 10)")
    p.add_argument(
        "--warmup", type=float, default=1.0, help="warm-up before each window (default 1)"
    )
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop workers (default 64)")
    p.add_argument(
        "--stream-concurrency",
        type=int,
        default=64,
        help="closed-loop streams at once (default 64)",
    )
    p.add_argument("--rate", type=float, default=200.0, help="open-loop requests/s (default 200)")
    p.add_argument(
        "--fallback-rate",
        type=float,
        default=40.0,
        help="open-loop rate for a target whose max is below 1.25× --rate (default 40, or half that target's max when lower)",
    )
    p.add_argument("--chunks", type=int, default=50, help="content chunks per stream (default 50)")
    p.add_argument(
        "--include-usage",
        action="store_true",
        help="streaming requests ask for stream_options.include_usage (default: they do not, "
        "as most clients; tier1 then asks upstream for usage itself and hides that chunk)",
    )
    p.add_argument("--skip-litellm", action="store_true", help="leave LiteLLM out")
    p.add_argument(
        "--litellm-venv", default=str(litellm_env.DEFAULT_VENV), help="where LiteLLM is installed"
    )
    p.add_argument("--litellm-spec", default=litellm_env.DEFAULT_SPEC, help="pip requirement")
    p.add_argument(
        "--upstream",
        choices=["auto", "fakes", "standin"],
        default="auto",
        help="auto: bench.fakes when it starts, else the stand-in in this package",
    )
    p.add_argument("--out", default=".strata/bench/tier1.json", help="JSON; markdown beside it")
    p.add_argument("--keep-logs", action="store_true", help="keep the temp dir with every log")
    p.add_argument(
        "--client",
        choices=["raw", "aiohttp"],
        default="raw",
        help="closed-loop HTTP client: raw (a lean asyncio protocol, default; leaves CPU 1 "
        "room for the fake) or aiohttp. The open loop always uses aiohttp",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of every process of the benchmark, e.g. -10 to be measured ahead of other "
        "work on a shared machine (negative needs root; default 0: as is)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.open_seconds <= 0 or args.rate <= 0:
        print(
            "strata bench tier1: --rounds, --seconds, --open-seconds, --rate must be > 0",
            file=sys.stderr,
        )
        return 2
    bench = Bench(args)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping every process", file=sys.stderr, flush=True)
        bench.failed = True
        return 130
    except StartFailed as e:
        print(f"strata bench tier1: {e}", file=sys.stderr, flush=True)
        bench.failed = True
        return 1
    except BaseException:
        bench.failed = True
        raise
    finally:
        bench.cleanup()
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="strata-tier1-bench-"))
        self.children = Children(self.tmp, nice=args.nice)
        self.etcd: Any = None
        self.failed = False
        self.notes: list[str] = []
        self.targets: dict[str, Target] = {}
        self.suts: dict[str, Child] = {}
        self.upstream_child: Child | None = None
        self.upstream_kind = ""
        self.litellm: dict[str, Any] = {}
        self.tier1_log: Path | None = None
        self.measure_s = math.nan
        self.idle: dict[str, float] = {}

    # -- lifecycle ----------------------------------------------------------------------
    def cleanup(self) -> None:
        self.children.stop_all()
        if self.etcd is not None:
            self.etcd.stop()
        if self.failed or self.args.keep_logs:
            print(f"logs kept in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self) -> int:
        a = self.args
        print(f"tier1 bench: logs in {self.tmp}", flush=True)
        if not can_pin():
            self.notes.append(
                f"only {os.cpu_count()} CPU(s) or no sched_setaffinity: nothing is pinned"
            )
            print("warning: " + self.notes[-1], flush=True)
        env_py = self._py_env("WARNING")
        lenv: litellm_env.LiteLLMEnv | None = None
        if a.skip_litellm:
            self.litellm = {"skipped": "--skip-litellm"}
        else:
            try:
                lenv = litellm_env.ensure(Path(a.litellm_venv), a.litellm_spec)
                self.litellm = {"version": lenv.version, "venv": str(lenv.venv)}
            except (litellm_env.InstallFailed, OSError, subprocess.SubprocessError) as e:
                self.litellm = {"skipped": f"install failed: {e}"}
                print(f"LiteLLM skipped: {e}", flush=True)

        up_port = self._start_upstream(env_py)
        up_v1 = f"http://127.0.0.1:{up_port}/v1"
        key = self._start_control_plane(env_py, up_v1)
        self._start_tier1(key)
        self._start_bare(env_py, up_port)
        if lenv is not None:
            try:
                self._start_litellm(lenv, up_v1)
            except (StartFailed, OSError) as e:
                self.litellm = {
                    "skipped": f"did not start: {str(e).splitlines()[0]}",
                    **self.litellm,
                }
                print(f"LiteLLM skipped: {e}", flush=True)
                self.targets.pop("litellm", None)
                self.suts.pop("litellm", None)
                self.children.stop_named("litellm")
        assert self.upstream_child is not None
        upstream = self.upstream_child
        self.targets = {
            "direct": Target(
                "direct",
                f"{up_v1}/chat/completions",
                self._headers(UPSTREAM_KEY),
                MODEL,
                cpu=None,
                upstream_cpu=upstream.cpu_seconds,
            ),
            **self.targets,
        }
        upstream.refresh_tree()
        for child in self.children.items:
            child.refresh_tree()
        for name, child in self.suts.items():
            self.targets[name].cpu = child.cpu_seconds
            self.targets[name].upstream_cpu = upstream.cpu_seconds
        for target in self.targets.values():
            target.ours_cpu = self._ours_cpu
            target.include_usage = a.include_usage
        if can_pin():
            pin(0, AUX_CPU)  # the driver is the load generator: CPU 1, with the fake
        if a.nice:
            os.setpriority(os.PRIO_PROCESS, 0, a.nice)
            if self.etcd is not None and self.etcd.process is not None:
                os.setpriority(os.PRIO_PROCESS, self.etcd.process.pid, a.nice)
            self.notes.append(f"every process of the benchmark ran at niceness {a.nice}")
        rss_start = {n: c.rss_mib() for n, c in self.suts.items()}
        rss_start["direct"] = upstream.rss_mib()

        t_measure = time.monotonic()
        rounds = _run_async(self._measure())
        self.measure_s = time.monotonic() - t_measure

        rss_end = {n: c.rss_mib() for n, c in self.suts.items()}
        rss_end["direct"] = upstream.rss_mib()
        for child in [*self.suts.values(), upstream]:
            if not child.alive():
                raise child.failure("died during the measurements")
        record = self._record(rounds, rss_start, rss_end)
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(
            orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
        md = report.markdown(record)
        out.with_suffix(".md").write_text(md)
        print()
        print(md)
        print(report.summary_line(record) + f"; JSON {out}, markdown {out.with_suffix('.md')}")
        return 0

    def _ours_cpu(self) -> tuple[float, float]:
        """CPU seconds of our children on CPU 0 and on CPU 1 (etcd included)."""
        on = [0.0, 0.0]
        for child in self.children.items:
            if child.cpu is not None:
                on[child.cpu] += child.cpu_seconds()
        etcd = self.etcd.process if self.etcd is not None else None
        if etcd is not None:
            on[AUX_CPU] += Child("etcd", etcd, Path(), AUX_CPU).cpu_seconds()
        return on[0], on[1]

    def _py_env(self, level: str) -> dict[str, str]:
        env = {**os.environ, "STRATA_ADMIN_TOKEN": ADMIN_TOKEN, "STRATA_LOG_LEVEL": level}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p
        )
        return env

    def _headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "x-fake-chunks": str(self.args.chunks)}

    # -- start-up -----------------------------------------------------------------------
    def _chat_ok(self, url: str, key: str, timeout_s: float = 5.0) -> bool:
        status, _ = http_post(
            url, request_body(MODEL, stream=False), self._headers(key), timeout_s=timeout_s
        )
        return status == 200

    def _start_upstream(self, env: dict[str, str]) -> int:
        py = sys.executable
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        use_fakes = self.args.upstream in ("auto", "fakes")
        why = "--upstream standin"
        failure = ""
        if use_fakes:
            if (
                importlib.util.find_spec("bench.fakes") is None
                or not (REPO / "bench" / "fakes" / "__main__.py").exists()
            ):
                why = "bench.fakes has no __main__ yet"
                use_fakes = False
        if use_fakes:
            cmd = [
                py,
                "-m",
                "bench.fakes",
                "--name",
                "up",
                "--port",
                str(port),
                "--dialect",
                "openai",
            ]
            helptext = subprocess.run(
                [py, "-m", "bench.fakes", "--help"],
                capture_output=True,
                text=True,
                env=env,
                cwd=REPO,
                timeout=60,
                check=False,
            ).stdout
            if "--record N" in helptext:
                cmd += ["--record", "0"]  # recording costs the fake CPU; nothing reads it
            child = self.children.start("fake", cmd, cpu=AUX_CPU, env=env, cwd=REPO)
            try:
                wait_until(
                    child,
                    "answering chat completions",
                    lambda: self._chat_ok(url, UPSTREAM_KEY),
                    30,
                )
                self.upstream_child, self.upstream_kind = (
                    child,
                    "bench.fakes (python -m bench.fakes)",
                )
                print(f"upstream: bench.fakes on :{port} (CPU {AUX_CPU})", flush=True)
                return port
            except StartFailed as e:
                if self.args.upstream == "fakes":
                    raise
                failure = str(e)
                why = f"bench.fakes did not start: {failure.splitlines()[0]}"
                self.children.stop_named("fake")
                port = free_port()
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
        print(f"note: using the stand-in upstream bench.tier1_bench.standin ({why})", flush=True)
        if failure:
            print(failure, flush=True)
        self.notes.append(f"upstream: stand-in bench.tier1_bench.standin ({why})")
        cmd = [py, "-m", "bench.tier1_bench.standin", "--port", str(port)]
        child = self.children.start("fake", cmd, cpu=AUX_CPU, env=env, cwd=REPO)
        wait_until(
            child, "answering chat completions", lambda: self._chat_ok(url, UPSTREAM_KEY), 30
        )
        self.upstream_child, self.upstream_kind = child, "stand-in (bench.tier1_bench.standin)"
        return port

    def _start_control_plane(self, env: dict[str, str], up_v1: str) -> str:
        from control.embedded import EmbeddedEtcd

        self.etcd = EmbeddedEtcd(self.tmp / "etcd", client_port=free_port(), fsync=False)
        self.etcd.start()
        if self.etcd.process is not None:
            pin(self.etcd.process.pid, AUX_CPU)
        rest_port, grpc_port = free_port(), free_port()
        self.grpc = f"127.0.0.1:{grpc_port}"
        control = self.children.start(
            "control",
            [
                sys.executable,
                "-m",
                "control.cli",
                "control",
                "--etcd-endpoints",
                self.etcd.endpoint,
                "--rest-port",
                str(rest_port),
                "--grpc-port",
                str(grpc_port),
                "--node-id",
                "bench-control",
                "--data-dir",
                str(self.tmp / "control"),
            ],
            cpu=AUX_CPU,
            env=env,
            cwd=REPO,
        )
        rest = f"http://127.0.0.1:{rest_port}"
        wait_until(control, "ready (GET /readyz)", lambda: http_get(f"{rest}/readyz")[0] == 200, 30)
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        docs = [
            {
                "kind": "Backend",
                "name": "fake",
                "spec": {
                    "schema": "openai",
                    "base_url": up_v1,
                    "auth": {"type": "api_key", "key": UPSTREAM_KEY},
                },
            },
            {
                "kind": "Route",
                "name": "bench",
                "spec": {"match": {"models": [MODEL]}, "backends": [{"name": "fake"}]},
            },
            {"kind": "Consumer", "name": "bench", "spec": {}},
        ]
        status, body = http_post(f"{rest}/v1/apply", orjson.dumps({"documents": docs}), auth)
        if status != 200:
            raise control.failure(f"refused the config: HTTP {status} {body[:500]!r}")
        status, body = http_post(f"{rest}/v1/consumers/bench/keys", b"{}", auth)
        if status not in (200, 201):
            raise control.failure(f"did not create a key: HTTP {status} {body[:500]!r}")
        print(f"control + etcd ready, config applied (CPU {AUX_CPU})", flush=True)
        return str(orjson.loads(body)["key"])

    def _start_tier1(self, key: str) -> None:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        child = self.children.start(
            "tier1",
            [
                sys.executable,
                "-m",
                "control.cli",
                "tier1",
                "--port",
                str(port),
                "--control",
                self.grpc,
                "--node-id",
                "bench-tier1",
                "--state-dir",
                str(self.tmp / "tier1-state"),
            ],
            cpu=SUT_CPU,
            env=self._py_env("INFO"),
            cwd=REPO,
        )
        self.tier1_log = child.log

        def ready() -> bool:
            status, body = http_get(f"{base}/readyz")
            return status == 200 and int(orjson.loads(body).get("revision") or 0) > 0

        wait_until(child, "ready (GET /readyz with revision > 0)", ready, 30)
        url = f"{base}/v1/chat/completions"
        wait_until(child, "answering with the bench key", lambda: self._chat_ok(url, key), 20, 0.1)
        self.suts["tier1"] = child
        self.targets["tier1"] = Target("tier1", url, self._headers(key), MODEL)
        print(f"tier1 ready on :{port} (CPU {SUT_CPU}, access log to {child.log})", flush=True)

    def _start_bare(self, env: dict[str, str], up_port: int) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        child = self.children.start(
            "bare",
            [
                sys.executable,
                "-m",
                "bench.tier1_bench.bareproxy",
                "--port",
                str(port),
                "--upstream",
                f"http://127.0.0.1:{up_port}",
            ],
            cpu=SUT_CPU,
            env=env,
            cwd=REPO,
        )
        wait_until(
            child, "answering chat completions", lambda: self._chat_ok(url, "client-key"), 20
        )
        self.suts["bare"] = child
        self.targets["bare"] = Target("bare", url, self._headers("client-key"), MODEL)
        print(f"bare proxy ready on :{port} (CPU {SUT_CPU})", flush=True)

    def _start_litellm(self, lenv: litellm_env.LiteLLMEnv, up_v1: str) -> None:
        port = free_port()
        config = self.tmp / "litellm.yaml"
        litellm_env.write_config(config, up_v1, MODEL, self.args.chunks)
        cmd, env = litellm_env.command(lenv, config, port)
        child = self.children.start("litellm", cmd, cpu=SUT_CPU, env=env, cwd=self.tmp)
        base = f"http://127.0.0.1:{port}"
        print(f"LiteLLM {lenv.version} starting on :{port} (CPU {SUT_CPU}; ~10 s)...", flush=True)
        took = wait_until(
            child,
            "live (GET /health/liveliness)",
            lambda: http_get(f"{base}/health/liveliness", timeout_s=2)[0] == 200,
            90,
            0.25,
        )
        url = f"{base}/v1/chat/completions"
        wait_until(
            child,
            "answering chat completions",
            lambda: self._chat_ok(url, litellm_env.MASTER_KEY, timeout_s=30),
            60,
            0.25,
        )
        self.suts["litellm"] = child
        self.targets["litellm"] = Target(
            "litellm", url, self._headers(litellm_env.MASTER_KEY), MODEL
        )
        self.litellm["ready_s"] = round(took, 1)
        print(f"LiteLLM ready on :{port} after {took:.1f} s", flush=True)

    # -- measurement ----------------------------------------------------------------------
    async def _check_targets(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, t in self.targets.items():
            s1, n1, _ = await one_request(t, stream=False)
            s2, _, events = await one_request(t, stream=True)
            out[name] = {"status": s1, "bytes": n1, "stream_status": s2, "stream_events": events}
            print(
                f"  {name}: non-stream HTTP {s1} ({n1} B), stream HTTP {s2} ({events} SSE events)",
                flush=True,
            )
            if s1 != 200 or s2 != 200:
                child = self.suts.get(name) or self.upstream_child
                assert child is not None
                raise child.failure(f"answered HTTP {s1}/{s2} to the check requests")
        counts = {v["stream_events"] for v in out.values()}
        if len(counts) > 1:
            self.notes.append(f"targets relay different SSE event counts per stream: {out}")
        return out

    async def _idle_cpu(self, seconds: float) -> dict[str, float]:
        """Share of a core each process uses with no load (timers, config stream, GC)."""
        procs = {**self.suts}
        if self.upstream_child is not None:
            procs["fake"] = self.upstream_child
        before = {n: c.cpu_seconds() for n, c in procs.items()}
        await asyncio.sleep(seconds)
        return {n: (c.cpu_seconds() - before[n]) / seconds for n, c in procs.items()}

    async def _settle(self, max_s: float = 10.0) -> None:
        """Wait until the targets are idle (LiteLLM finishes requests after a disconnect)."""
        children = list(self.suts.values())
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            before = sum(c.cpu_seconds() for c in children)
            await asyncio.sleep(0.3)
            if sum(c.cpu_seconds() for c in children) - before <= 0.03:
                return

    async def _measure(self) -> list[dict[str, Any]]:
        a = self.args
        print("check requests:", flush=True)
        self.checks = await self._check_targets()
        await self._settle()
        self.idle = await self._idle_cpu(2.0)
        print(
            "idle CPU: " + ", ".join(f"{n} {v:.1%}" for n, v in self.idle.items()),
            flush=True,
        )
        names = list(self.targets)
        rounds: list[dict[str, Any]] = []
        per_closed = a.warmup + a.seconds
        est = a.rounds * (
            2 * len(names) * (per_closed + 0.5)
            + (len(names) + 1) * (a.warmup + a.open_seconds + 0.5)
        )
        print(
            f"measuring: {a.rounds} round(s) × {len(names)} targets, about {est / 60:.1f} min",
            flush=True,
        )
        for i in range(a.rounds):
            k = i % len(names)
            order = names[k:] + names[:k]
            r: dict[str, Any] = {"order": order, "nonstream": {}, "stream": {}, "open": {}}
            print(f"round {i + 1}/{a.rounds} (order {', '.join(order)})", flush=True)
            for stream in (False, True):
                phase = "stream" if stream else "nonstream"
                for name in order:
                    await self._settle()
                    res = await closed_loop(
                        self.targets[name],
                        stream=stream,
                        events_per_stream=self.checks[name]["stream_events"],
                        client=a.client,
                        concurrency=a.stream_concurrency if stream else a.concurrency,
                        warmup_s=a.warmup,
                        seconds=a.seconds,
                    )
                    r[phase][name] = res
                    _print_closed(phase, name, res)
            rate_of = {n: _open_rate(a, n, r["nonstream"][n]["per_s"]) for n in order}
            rates = sorted(set(rate_of.values()), reverse=True)
            for rate in rates:
                members = [n for n in order if rate_of[n] == rate or n == "direct"]
                await self._settle()
                runs = await open_loop(
                    [self.targets[n] for n in members],
                    rate=rate,
                    warmup_s=a.warmup,
                    seconds=a.open_seconds,
                )
                for name, res in runs.items():
                    _print_open(name, res)
                r["open"][f"{rate:g}"] = runs
            rounds.append(r)
        return rounds

    def _record(
        self, rounds: list[dict[str, Any]], rss_start: dict[str, float], rss_end: dict[str, float]
    ) -> dict[str, Any]:
        a = self.args
        names = list(self.targets)
        summary = report.summarize(rounds, names, a.rate)
        ratios = report.ratios(rounds, names)
        verdicts = report.verdicts(summary, ratios, a.rate, self.litellm.get("skipped"))
        self._noise_notes(rounds)
        access_lines = _count_access_lines(self.tier1_log)
        if access_lines is not None:
            self.notes.append(
                f"tier1 access log: {access_lines:,} JSON lines written during the run"
            )
        pinning = (
            f"systems under test (tier1, bare proxy, LiteLLM) on CPU {SUT_CPU}; fake upstream, "
            f"load generator (this process), etcd and control on CPU {AUX_CPU} "
            "(os.sched_setaffinity at child start)"
            if can_pin()
            else "none (fewer than 2 CPUs)"
        )
        return {
            "benchmark": "tier1",
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "pinning": pinning,
            "upstream": self.upstream_kind,
            "litellm": self.litellm,
            "config": {
                "rounds": a.rounds,
                "seconds": a.seconds,
                "open_seconds": a.open_seconds,
                "warmup": a.warmup,
                "concurrency": a.concurrency,
                "stream_concurrency": a.stream_concurrency,
                "rate": a.rate,
                "fallback_rate": a.fallback_rate,
                "chunks": a.chunks,
                "request_bytes": len(request_body(MODEL, stream=False)),
                "client": a.client,
                "include_usage": a.include_usage,
            },
            "measure_seconds": round(self.measure_s, 1),
            "checks": self.checks,
            "idle_cpu_share": self.idle,
            "summary": _jsonable(summary),
            "ratios": _jsonable(ratios),
            "verdicts": [v.as_dict() for v in verdicts],
            "rss_mib": {n: {"start": rss_start[n], "end": rss_end[n]} for n in rss_start},
            "notes": self.notes,
            "rounds": rounds,
        }

    def _noise_notes(self, rounds: list[dict[str, Any]]) -> None:
        closed = [
            (name, res)
            for r in rounds
            for phase in ("nonstream", "stream")
            for name, res in r[phase].items()
        ]
        opened = [
            (name, res) for r in rounds for runs in r["open"].values() for name, res in runs.items()
        ]
        windows = closed + opened
        for cpu in (0, 1):
            key = f"cpu{cpu}_others"
            # CPU 0 matters only while a target on it is measured (direct leaves it idle)
            shares = [
                w[key]
                for name, w in windows
                if not math.isnan(w.get(key, math.nan)) and (cpu == 1 or name != "direct")
            ]
            busy = [x for x in shares if x > 0.1]
            if busy:
                self.notes.append(
                    f"NOISY: other processes on this machine used more than 10 % of CPU {cpu} in "
                    f"{len(busy)} of {len(shares)} measurement windows (up to {max(busy):.0%}); "
                    "absolute numbers are low and noisy: compare within a round, and prefer "
                    "CPU µs per request (the *_by_cpu ratios)"
                )
        for name, share in self.idle.items():
            if share > 0.02:
                self.notes.append(
                    f"{name} uses {share:.1%} of a core when idle; that is in its CPU µs per "
                    "request too, most at the low open-loop rate"
                )
        bounded: dict[str, list[float]] = {}
        for name, res in closed:
            if name != "direct" and res["sut_busy"] < 0.9 and res.get("cpu1_busy", 0.0) > 0.9:
                bounded.setdefault(name, []).append(res["sut_busy"])
        for name, busy in bounded.items():
            self.notes.append(
                f"{name}: in {len(busy)} closed-loop window(s) its core was only "
                f"{min(busy):.0%}–{max(busy):.0%} busy while CPU {AUX_CPU} was saturated (fake, "
                "load generator and other processes): there its requests/s is bounded by "
                f"CPU {AUX_CPU}, not by itself"
            )
        for name, res in windows:
            if res["errors"]:
                self.notes.append(
                    f"{name}: {res['errors']} errors in one window, first: {res['first_error']}"
                )
        for name, res in opened:
            if res["overloaded"]:
                self.notes.append(
                    f"{name} at {res['rate']:g} requests/s: {res['completed']}/{res['sent']} "
                    "answered in time (overloaded)"
                )
        lags = [res["send_lag_p99_ms"] for _, res in opened]
        late = [x for x in lags if x > 2.0]
        if late:
            self.notes.append(
                f"open loop: the load generator sent late in {len(late)} of {len(lags)} windows "
                f"(send lag p99 up to {max(late):.1f} ms, as CPU {AUX_CPU} is shared); the lag is "
                "in every latency, direct's too, so 'added' latency mostly cancels it"
            )


def _open_rate(a: argparse.Namespace, name: str, max_rps: float) -> float:
    """--rate, unless the target cannot sustain it: then --fallback-rate or half its max."""
    if name == "direct" or max_rps >= 1.25 * a.rate:
        return float(a.rate)
    return float(max(1, min(a.fallback_rate, round(max_rps / 2))))


def _run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Spread):
        return obj.as_dict()
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def _count_access_lines(log: Path | None) -> int | None:
    if log is None:
        return None
    n = 0
    try:
        with open(log, "rb") as f:
            for line in f:
                # the buffered sink writes bare JSON lines; the logging sink prefixes them
                if b'"request_id"' in line:
                    n += 1
    except OSError:
        return None
    return n


def _print_closed(phase: str, name: str, res: dict[str, Any]) -> None:
    extra = ""
    if phase == "stream":
        eps = res["events_per_stream"]
        per = "—" if math.isnan(eps) else f"{eps:.0f}"
        extra = f", {res['events_per_s']:,.0f} chunks/s ({per} events/completed stream)"
    cpu = res["sut_cpu_us_per"]
    cpu_s = "" if math.isnan(cpu) else f", {cpu:,.0f} µs CPU each, core {res['sut_busy']:.0%} busy"
    err = f", {res['errors']} errors ({res['first_error']})" if res["errors"] else ""
    print(
        f"  {phase:9s} {name:8s} {res['per_s']:8,.0f}/s{extra}{cpu_s}; "
        f"fake {res['upstream_busy']:.0%} + loadgen {res['loadgen_busy']:.0%} of CPU 1"
        f"{_others(res)}{err}",
        flush=True,
    )


def _others(res: dict[str, Any]) -> str:
    o0, o1 = res.get("cpu0_others", math.nan), res.get("cpu1_others", math.nan)
    if math.isnan(o0) or math.isnan(o1) or max(o0, o1) < 0.05:
        return ""
    return f"; other processes: CPU 0 {o0:.0%}, CPU 1 {o1:.0%}"


def _print_open(name: str, res: dict[str, Any]) -> None:
    over = " OVERLOADED" if res["overloaded"] else ""
    print(
        f"  open@{res['rate']:g}  {name:8s} p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms, "
        f"{res['completed']}/{res['sent']} ok{over}{_others(res)}",
        flush=True,
    )
