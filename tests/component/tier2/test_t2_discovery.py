"""Endpoint discovery: a static list, a DNS name through an injected resolver (a headless
Service), re-resolution on a schedule, and switching source when control pushes."""

from __future__ import annotations

import asyncio
import socket

import pytest

from common.config.pool import DnsEndpoints, StaticEndpoints
from tier2.datalayer.discovery import Discovery, endpoint_id, system_resolver


class FakeDns:
    """Answers from a dict; a name mapped to an OSError raises it."""

    def __init__(self) -> None:
        self.records: dict[str, list[str] | OSError] = {}
        self.lookups = 0

    async def __call__(self, name: str, port: int) -> list[str]:
        self.lookups += 1
        answer = self.records.get(name, [])
        if isinstance(answer, OSError):
            raise answer
        return list(answer)


class ManualTimer:
    """A sleep that returns only when the test says a refresh period has passed."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[None]] = []
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        await fut

    async def fire(self) -> None:
        while not self.waiting:
            await asyncio.sleep(0)
        self.waiting.pop(0).set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)


def _collect() -> tuple[list[tuple[str, ...]], Discovery, FakeDns, ManualTimer]:
    changes: list[tuple[str, ...]] = []
    dns, timer = FakeDns(), ManualTimer()
    return changes, Discovery(changes.append, resolver=dns, sleep=timer), dns, timer


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [("10.0.0.7", 8000, "10.0.0.7:8000"), ("fd00::7", 8000, "[fd00::7]:8000")],
)
def test_endpoint_ids_bracket_ipv6(address: str, port: int, expected: str) -> None:
    assert endpoint_id(address, port) == expected


async def test_static_list_is_published_once() -> None:
    changes, disco, _, _ = _collect()
    spec = StaticEndpoints(addresses=["127.0.0.1:8200", "127.0.0.1:8201"])
    await disco.configure(spec)
    await disco.configure(spec)  # the same snapshot again: nothing happens
    assert changes == [("127.0.0.1:8200", "127.0.0.1:8201")]
    await disco.configure(StaticEndpoints(addresses=["127.0.0.1:8201", "127.0.0.1:8202"]))
    assert changes[-1] == ("127.0.0.1:8201", "127.0.0.1:8202")
    await disco.close()


async def test_dns_name_is_resolved_then_followed_on_its_refresh_period() -> None:
    changes, disco, dns, timer = _collect()
    name = "vllm.models.svc.cluster.local"
    dns.records[name] = ["10.0.0.2", "10.0.0.1"]
    await disco.configure(DnsEndpoints(name=name, port=8000, refresh_s=5))
    assert changes == [("10.0.0.1:8000", "10.0.0.2:8000")]  # before configure returns

    dns.records[name] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]  # a pod became Ready
    await timer.fire()
    await timer.fire()  # the same answer again: no change pushed
    dns.records[name] = ["10.0.0.3"]  # two pods gone
    await timer.fire()
    assert changes == [
        ("10.0.0.1:8000", "10.0.0.2:8000"),
        ("10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"),
        ("10.0.0.3:8000",),
    ]
    assert timer.asked[:3] == [5, 5, 5]
    await disco.close()


async def test_dns_failure_keeps_the_last_list_but_no_such_name_empties_it() -> None:
    changes, disco, dns, timer = _collect()
    name = "vllm.example"
    dns.records[name] = ["10.0.0.1"]
    await disco.configure(DnsEndpoints(name=name, port=80))
    dns.records[name] = OSError("temporary failure in name resolution")
    await timer.fire()
    assert disco.current == ("10.0.0.1:80",) and "temporary" in (disco.last_error or "")
    dns.records[name] = []  # the resolver's "no such name": no Ready pod left
    await timer.fire()
    assert changes[-1] == () and disco.last_error is None
    await disco.close()


async def test_switching_from_dns_to_static_stops_resolving() -> None:
    changes, disco, dns, timer = _collect()
    dns.records["svc"] = ["10.0.0.1"]
    await disco.configure(DnsEndpoints(name="svc", port=80))
    await disco.configure(StaticEndpoints(addresses=["127.0.0.1:9000"]))
    lookups = dns.lookups
    assert changes[-1] == ("127.0.0.1:9000",)
    assert all(f.cancelled() for f in timer.waiting)  # the refresh loop is gone
    assert dns.lookups == lookups
    await disco.close()


async def test_system_resolver_answers_localhost_and_nothing_for_unknown_names() -> None:
    addresses = await system_resolver("localhost", 80)
    assert "127.0.0.1" in addresses or "::1" in addresses
    try:
        unknown = await system_resolver("no-such-host.invalid", 80)
    except socket.gaierror:  # a sandbox without DNS may fail differently
        pytest.skip("no resolver answers here")
    assert unknown == []
