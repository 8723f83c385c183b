"""`strata up`: run the local stack from deploy/local/stack.yaml in the foreground.

Starts each process in order, waits until it answers its readiness check, applies the
example configuration, prints where everything listens, shows the processes' state
while it runs and stops all of them (in reverse order) on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import yaml

from control.cli.output import table

DEFAULT_STACK = Path("deploy/local/stack.yaml")


@dataclass
class Proc:
    name: str
    command: list[str]
    ready_url: str | None
    listens: str
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    started_at: float = 0.0
    restarts: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def state(self) -> str:
        if self.popen is None:
            return "not started"
        code = self.popen.poll()
        return "running" if code is None else f"exited ({code})"


def _strata() -> list[str]:
    return [sys.executable, "-m", "control.cli"]


def load_stack(path: Path) -> tuple[list[Proc], list[str], list[str], dict[str, str]]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    common_env = {k: str(v) for k, v in (data.get("env") or {}).items()}
    procs = []
    for entry in data.get("processes", []):
        cmd = [str(c) for c in entry["command"]]
        if cmd and cmd[0] == "strata":
            cmd = _strata() + cmd[1:]
        procs.append(
            Proc(
                entry["name"],
                cmd,
                entry.get("ready"),
                entry.get("listens", ""),
                env={**common_env, **{k: str(v) for k, v in (entry.get("env") or {}).items()}},
            )
        )
    apply_files = [str(p) for p in data.get("apply", [])]
    return procs, apply_files, [str(h) for h in data.get("hints", [])], common_env


def _ready(url: str) -> bool:
    try:
        with urlopen(url, timeout=0.5) as r:
            return bool(200 <= r.status < 300)
    except (URLError, OSError):
        return False


def _wait_ready(proc: Proc, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while proc.ready_url and not _ready(proc.ready_url):
        if proc.popen is not None and proc.popen.poll() is not None:
            raise RuntimeError(
                f"{proc.name} exited with {proc.popen.returncode}; see {proc.log_path}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{proc.name} not ready after {timeout_s:.0f}s at {proc.ready_url}; see {proc.log_path}"
            )
        time.sleep(0.05)  # noqa: TID251 - the CLI supervisor is synchronous by design


def _start(proc: Proc, log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    proc.log_path = log_dir / f"{proc.name}.log"
    with open(proc.log_path, "ab") as out:
        proc.popen = subprocess.Popen(
            proc.command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **proc.env},
        )
    proc.started_at = time.time()


def _stop_all(procs: list[Proc], timeout_s: float = 10.0) -> None:
    for proc in reversed(procs):
        if proc.popen is not None and proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for proc in reversed(procs):
        if proc.popen is None:
            continue
        try:
            proc.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()


def _state_table(procs: list[Proc]) -> str:
    now = time.time()
    rows = [
        [
            p.name,
            p.state(),
            p.popen.pid if p.popen else "-",
            p.listens,
            f"{now - p.started_at:.0f}s" if p.started_at else "-",
            p.log_path,
        ]
        for p in procs
    ]
    return table(["PROCESS", "STATE", "PID", "LISTENS", "UP", "LOG"], rows)


def run_up(stack_path: Path, *, apply_config: bool = True, once: bool = False) -> int:
    if not stack_path.exists():
        print(f"strata up: no stack file at {stack_path}", file=sys.stderr)
        return 2
    procs, apply_files, hints, common_env = load_stack(stack_path)
    log_dir = Path(".strata/logs")
    stop = {"now": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for proc in procs:
            print(
                f"starting {proc.name:<12} {' '.join(proc.command[3:] if proc.command[:3] == _strata() else proc.command)}",
                flush=True,
            )
            _start(proc, log_dir)
            _wait_ready(proc, timeout_s=60)
            if stop["now"]:
                return 130
        if apply_config:
            for f in apply_files:
                print(f"applying {f}", flush=True)
                result = subprocess.run(
                    [*_strata(), "apply", "-f", f], check=False, env={**os.environ, **common_env}
                )
                if result.returncode != 0:
                    print(f"strata up: applying {f} failed", file=sys.stderr)
                    return 1
        print("\nThe local stack is up:\n" + _state_table(procs) + "\n", flush=True)
        for hint in hints:
            print(hint)
        print("\nCtrl-C stops everything.\n", flush=True)
        last = ""
        while not stop["now"] and not once:
            states = ",".join(p.state() for p in procs)
            if states != last:
                if last:
                    print(
                        time.strftime("%H:%M:%S")
                        + " process state changed:\n"
                        + _state_table(procs),
                        flush=True,
                    )
                last = states
            time.sleep(0.5)  # noqa: TID251 - synchronous supervisor loop
        return 0
    except RuntimeError as e:
        print(f"strata up: {e}", file=sys.stderr)
        return 1
    finally:
        print("stopping the local stack ...", flush=True)
        _stop_all(procs)
        print("stopped.", flush=True)
