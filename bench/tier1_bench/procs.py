"""Child processes of the benchmark: pinned, logged to files, read from /proc, cleaned up.

Every child starts in its own session (so a Ctrl-C in the terminal reaches only the
driver, which then stops the children in order) and with PR_SET_PDEATHSIG, so a driver
killed with SIGKILL does not leave them running. Stopping signals the child's process
group by its id: LiteLLM and tier1 workers go with their parent.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from bench.tier1_bench.stats import cpu_ticks_from_stat, ppid_from_stat, rss_kib_from_status

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


def pin(pid: int, cpu: int) -> None:
    if can_pin():
        os.sched_setaffinity(pid, {cpu})


def _preexec(cpu: int | None, nice: int) -> Callable[[], None]:
    def run() -> None:
        if cpu is not None and can_pin():
            os.sched_setaffinity(0, {cpu})
        if nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass

    return run


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as e:
        return f"(cannot read {path}: {e.strerror})"
    return "\n".join(data.splitlines()[-lines:])


class StartFailed(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    cpu: int | None
    pids: list[int] = field(default_factory=list)
    """This process and its descendants, found once it is ready (for CPU and RSS)."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def failure(self, what: str) -> StartFailed:
        code = self.proc.poll()
        state = f"exited with {code}" if code is not None else "still running"
        return StartFailed(
            f"{self.name} (pid {self.pid}) {what}; it {state}. Log {self.log}, last lines:\n"
            + tail(self.log)
        )

    def refresh_tree(self) -> None:
        self.pids = [self.pid, *descendants(self.pid)]

    def cpu_seconds(self) -> float:
        """utime + stime of the process tree (threads included)."""
        ticks = 0
        for pid in self.pids or [self.pid]:
            try:
                ticks += cpu_ticks_from_stat(Path(f"/proc/{pid}/stat").read_text())
            except (OSError, ValueError):
                pass
        return ticks / CLK_TCK

    def rss_mib(self) -> float:
        kib = 0
        for pid in self.pids or [self.pid]:
            try:
                kib += rss_kib_from_status(Path(f"/proc/{pid}/status").read_text())
            except OSError:
                pass
        return kib / 1024


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = ppid_from_stat(Path(f"/proc/{entry}/stat").read_text())
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class Children:
    """The benchmark's child processes, stopped in reverse start order."""

    def __init__(self, logdir: Path, nice: int = 0) -> None:
        self.logdir = logdir
        self.nice = nice
        self.items: list[Child] = []

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        cpu: int | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log = self.logdir / f"{name}.log"
        with open(log, "ab") as out:
            out.write(f"$ {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_preexec(cpu, self.nice),
            )
        child = Child(name, proc, log, cpu)
        self.items.append(child)
        return child

    def stop_named(self, name: str, timeout_s: float = 10.0) -> None:
        for child in [c for c in self.items if c.name == name]:
            _signal_group(child.proc, signal.SIGTERM)
            try:
                child.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(5)
            self.items.remove(child)

    def stop_all(self, timeout_s: float = 10.0) -> None:
        for child in reversed(self.items):
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.items):
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait(5)
        self.items.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)  # its own session: the group id is its pid
    except ProcessLookupError:
        pass
    except PermissionError:
        proc.send_signal(sig)


def http_get(
    url: str, timeout_s: float = 1.0, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    try:
        with urlopen(Request(url, headers=headers or {}), timeout=timeout_s) as r:
            return int(r.status), r.read()
    except HTTPError as e:
        return int(e.code), e.read()


def http_post(
    url: str, body: bytes, headers: dict[str, str], timeout_s: float = 10.0
) -> tuple[int, bytes]:
    req = Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urlopen(req, timeout=timeout_s) as r:
            return int(r.status), r.read()
    except HTTPError as e:
        return int(e.code), e.read()


def wait_until(
    child: Child, what: str, probe: Callable[[], bool], timeout_s: float, poll_s: float = 0.05
) -> float:
    """Poll ``probe`` until it is true; seconds waited. StartFailed naming the child and
    its log when the child exits or ``timeout_s`` passes."""
    t0 = time.monotonic()
    while True:
        try:
            if probe():
                return time.monotonic() - t0
        except (URLError, OSError, ValueError):
            pass
        if not child.alive():
            raise child.failure(f"exited before {what}")
        if time.monotonic() - t0 > timeout_s:
            raise child.failure(f"not {what} after {timeout_s:.0f} s")
        time.sleep(poll_s)  # noqa: TID251 - synchronous start-up poll, before any event loop
