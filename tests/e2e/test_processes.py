"""Real processes through the `strata` CLI: control, tier1, tier2, apply, status, a
restart from disk while control is down, and `strata up` on its own ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest

from common import jsonutil
from control.embedded import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]

REPO = Path(__file__).resolve().parents[2]
STRATA = [sys.executable, "-m", "control.cli"]


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urlopen(url, timeout=1) as r:
            return r.status, jsonutil.loads(r.read())
    except URLError as e:
        code = getattr(e, "code", 0)
        body = e.read() if hasattr(e, "read") else b"{}"
        return code, jsonutil.loads(body or b"{}")
    except OSError:
        return 0, {}


def _wait(predicate: object, timeout_s: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Stack:
    def __init__(self, tmp: Path, etcd: str, key_root: str, control_id: str = "ctl-e2e") -> None:
        self.tmp, self.etcd, self.key_root, self.control_id = tmp, etcd, key_root, control_id
        self.rest, self.grpc = free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **os.environ,
            "STRATA_ADMIN_TOKEN": "st-e2e-token",
            "STRATA_SERVER": f"http://127.0.0.1:{self.rest}",
        }

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{self.control_id}-{name}.log", "ab") as log:
            p = subprocess.Popen(
                [*STRATA, *args], cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.procs[name] = p
        return p

    def start_control(self) -> None:
        self.start(
            "control",
            "control",
            "--etcd-endpoints",
            self.etcd,
            "--rest-port",
            str(self.rest),
            "--grpc-port",
            str(self.grpc),
            "--key-root",
            self.key_root,
            "--node-id",
            self.control_id,
        )
        _wait(lambda: _get(f"http://127.0.0.1:{self.rest}/readyz")[0] == 200, what="control ready")

    def stop(self, name: str) -> None:
        p = self.procs.pop(name)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*STRATA, *args], cwd=self.tmp, env=self.env, capture_output=True, text=True, timeout=30
        )

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture
def stack(tmp_path: Path, etcd_endpoint: str, key_root: str) -> Iterator[Stack]:
    s = Stack(tmp_path, etcd_endpoint, key_root)
    try:
        yield s
    finally:
        s.close()


def test_apply_status_and_restart_from_disk(stack: Stack) -> None:
    stack.start_control()
    t1, t2 = free_port(), free_port()
    control = f"127.0.0.1:{stack.grpc}"
    stack.start("tier1", "tier1", "--port", str(t1), "--control", control, "--node-id", "edge-1")
    stack.start(
        "tier2",
        "tier2",
        "--pool",
        "local",
        "--port",
        str(t2),
        "--control",
        control,
        "--node-id",
        "pool-1",
    )
    example = str(REPO / "deploy/local/config.yaml")

    first = stack.cli("apply", "-f", example)
    assert first.returncode == 0, first.stderr
    assert "route/local created" in first.stdout
    second = stack.cli("apply", "-f", example)
    assert second.returncode == 0 and second.stdout.count("unchanged") == 8, second.stdout

    def synced() -> bool:
        out = stack.cli("status", "-o", "json")
        nodes = jsonutil.loads(out.stdout)["nodes"] if out.returncode == 0 else []
        return {n["node_id"] for n in nodes if n["in_sync"]} == {"edge-1", "pool-1"}

    _wait(synced, what="both tiers in sync")
    table = stack.cli("status").stdout
    assert "edge-1" in table and "pool-1" in table and "in sync" in table
    code, ready = _get(f"http://127.0.0.1:{t1}/readyz")
    assert code == 200 and ready["source"] == "control"
    revision = ready["revision"]
    assert "strata_config_revision" in urlopen(f"http://127.0.0.1:{t1}/metrics").read().decode()

    # control down, tier1 restarted: it serves its disk snapshot
    stack.stop("control")
    stack.stop("tier1")
    stack.start("tier1b", "tier1", "--port", str(t1), "--control", control, "--node-id", "edge-1")
    _wait(lambda: _get(f"http://127.0.0.1:{t1}/readyz")[0] == 200, what="tier1 ready from disk")
    code, ready = _get(f"http://127.0.0.1:{t1}/readyz")
    assert ready["source"] == "disk" and ready["revision"] == revision

    bad = stack.cli("get", "routes")
    assert bad.returncode == 1 and "cannot reach control" in bad.stderr


def test_cli_errors_are_one_line(stack: Stack, tmp_path: Path) -> None:
    stack.start_control()
    broken = tmp_path / "bad.yaml"
    broken.write_text(
        "kind: Route\nname: r\nspec: {match: {models: [m]}, backends: [{name: ghost}]}\n"
    )
    out = stack.cli("apply", "-f", str(broken))
    assert out.returncode == 1 and "backend 'ghost' does not exist" in out.stderr
    out = stack.cli("get", "widgets")
    assert out.returncode == 1 and "unknown kind" in out.stderr
    out = stack.cli("--token", "nope", "get", "routes")
    assert out.returncode == 1 and "401" in out.stderr
    out = stack.cli("apply", "-f", str(tmp_path / "missing.yaml"))
    assert out.returncode == 1 and "cannot read" in out.stderr
    out = stack.cli("delete", "route", "ghost")
    assert out.returncode == 1 and "404" in out.stderr


def test_strata_up_starts_applies_and_stops(
    tmp_path: Path, etcd_endpoint: str, key_root: str
) -> None:
    rest, grpc, t1 = free_port(), free_port(), free_port()
    etcd_port, peer = free_port(), free_port()
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(f"""
env: {{STRATA_SERVER: "http://127.0.0.1:{rest}"}}
processes:
  - name: etcd
    command: [strata, etcd, --data-dir, {tmp_path}/etcd, --port, {etcd_port}, --peer-port, {peer}]
    ready: http://127.0.0.1:{etcd_port}/health
  - name: control
    command: [strata, control, --etcd-endpoints, "127.0.0.1:{etcd_port}", --create-admin-token, --rest-port, {rest}, --grpc-port, {grpc}]
    ready: http://127.0.0.1:{rest}/readyz
  - name: tier1
    command: [strata, tier1, --port, {t1}, --control, "127.0.0.1:{grpc}"]
    ready: http://127.0.0.1:{t1}/healthz
apply: [{REPO}/deploy/local/config.yaml]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    up = subprocess.Popen(
        [*STRATA, "up", "--stack", str(stack_file)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    stdout = up.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    try:
        _wait(
            lambda: any("Ctrl-C stops everything" in ln for ln in lines),
            timeout_s=60,
            what="strata up ready",
        )
        code, ready = _get(f"http://127.0.0.1:{t1}/readyz")
        assert code == 200 and int(ready["revision"]) > 0  # type: ignore[call-overload]
        assert (tmp_path / ".strata/admin-token").exists()
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=30)
        reader.join(timeout=5)
        stdout.close()
    out = "".join(lines)
    assert up.returncode == 0, out
    assert "The local stack is up" in out and "route/local created" in out and "stopped." in out
    assert _get(f"http://127.0.0.1:{rest}/healthz")[0] == 0  # everything is down


def test_control_killed_tier_moves_to_other_replica(
    tmp_path: Path, etcd_endpoint: str, key_root: str
) -> None:
    a = Stack(tmp_path, etcd_endpoint, key_root, "ctl-e2e-a")
    b = Stack(tmp_path, etcd_endpoint, key_root, "ctl-e2e-b")
    b.env["STRATA_SERVER"] = f"http://127.0.0.1:{b.rest}"
    t1 = free_port()
    try:
        a.start_control()
        b.start_control()
        a.start(
            "tier1",
            "tier1",
            "--port",
            str(t1),
            "--control",
            f"127.0.0.1:{a.grpc},127.0.0.1:{b.grpc}",
            "--node-id",
            "edge-k",
        )
        _wait(lambda: _get(f"http://127.0.0.1:{t1}/readyz")[0] == 200, what="tier1 ready")
        a.procs["control"].kill()  # SIGKILL: no goodbye on the stream
        a.procs.pop("control").wait()
        doc = tmp_path / "b.yaml"
        doc.write_text(
            "kind: Backend\nname: after-kill\nspec: {schema: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
        )
        assert b.cli("apply", "-f", str(doc)).returncode == 0

        def moved() -> bool:
            out = b.cli("status", "-o", "json")
            if out.returncode != 0:
                return False
            nodes = jsonutil.loads(out.stdout)["nodes"]
            return any(
                n["node_id"] == "edge-k" and n["in_sync"] and n["control"] == "ctl-e2e-b"
                for n in nodes
            )

        _wait(moved, timeout_s=30, what="tier1 re-registered through replica b, in sync")
        assert _get(f"http://127.0.0.1:{t1}/readyz")[0] == 200  # served throughout
    finally:
        a.close()
        b.close()


def _post(
    url: str, body: Mapping[str, object], headers: dict[str, str], timeout: float = 10
) -> tuple[int, bytes]:
    from urllib.request import Request

    req = Request(
        url,
        data=jsonutil.dumps(body),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except URLError as e:
        return getattr(e, "code", 0), b""


def test_tier1_workers_serve_and_drain_streams_on_sigterm(stack: Stack, tmp_path: Path) -> None:
    stack.start_control()
    fake_port, t1 = free_port(), free_port()
    with open(tmp_path / "fake.log", "ab") as log:
        fake = subprocess.Popen(
            [sys.executable, "-m", "bench.fakes", "--name", "up", "--port", str(fake_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack.procs["fake"] = fake
    doc = tmp_path / "cfg.yaml"
    doc.write_text(
        f"kind: Backend\nname: up\nspec: {{schema: openai, base_url: 'http://127.0.0.1:{fake_port}/v1', "
        "auth: {type: api_key, key: sk-up}}\n---\n"
        "kind: Route\nname: r\nspec: {match: {models: [m]}, backends: [{name: up}]}\n---\n"
        "kind: Consumer\nname: c\nspec: {}\n"
    )
    assert stack.cli("apply", "-f", str(doc)).returncode == 0, "apply"
    key = jsonutil.loads(stack.cli("key", "create", "c", "-o", "json").stdout)["key"]
    tier1 = stack.start(
        "tier1",
        "tier1",
        "--port",
        str(t1),
        "--workers",
        "2",
        "--control",
        f"127.0.0.1:{stack.grpc}",
        "--node-id",
        "edge-w",
        "--drain-s",
        "10",
    )

    def both_workers_in_sync() -> bool:
        out = stack.cli("status", "-o", "json")
        nodes = jsonutil.loads(out.stdout)["nodes"] if out.returncode == 0 else []
        return {n["node_id"] for n in nodes if n["in_sync"]} >= {"edge-w-w0", "edge-w-w1"}

    _wait(both_workers_in_sync, what="both workers configured")
    url = f"http://127.0.0.1:{t1}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert all(_post(url, body, auth)[0] == 200 for _ in range(20))

    # a 2-second stream is in flight when tier1 is told to stop: it must finish
    result: dict[str, object] = {}

    def stream() -> None:
        result["status"], result["body"] = _post(
            url,
            {**body, "stream": True},
            {**auth, "x-fake-chunks": "20", "x-fake-chunk-delay-ms": "100"},
            timeout=20,
        )

    t = threading.Thread(target=stream)
    t.start()
    time.sleep(0.5)
    tier1.send_signal(signal.SIGTERM)
    t.join(20)
    assert result["status"] == 200 and b"data: [DONE]" in result["body"]  # type: ignore[operator]
    assert tier1.wait(15) == 0
    stack.procs.pop("tier1")
    access = [
        jsonutil.loads(line)
        for line in (tmp_path / "ctl-e2e-tier1.log").read_bytes().splitlines()
        if line.startswith(b'{"request_id"')
    ]
    assert len(access) >= 21 and {a["status"] for a in access} == {
        200
    }  # every worker's lines, flushed
    assert _post(url, body, auth, timeout=2)[0] == 0  # no longer accepting
