"""Endpoint discovery: which `host:port` model servers make up the pool right now.

Two sources, chosen by the pushed Pool config:
- a static list (`endpoints.type: static`), taken as is;
- a DNS name (`endpoints.type: dns`), re-resolved every `refresh_s` seconds. With a
  Kubernetes headless Service each Ready pod is one A/AAAA record, so pods join and leave
  without any Kubernetes API access (no RBAC).

A new Pool snapshot from control simply calls `configure` again; the membership is
handed to `on_change` whenever it differs, and endpoints come and go without a restart.
A resolver error other than "no such name" keeps the last known list (a DNS hiccup must
not empty the pool); "no such name" means no Ready pod, so the pool is empty.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from common.config.pool import DnsEndpoints, StaticEndpoints
from common.tasks import cancel_and_wait, guarded_task

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(name, port) -> IP addresses; raises OSError when the lookup itself failed."""
Sleep = Callable[[float], Awaitable[None]]
EndpointsSpec = StaticEndpoints | DnsEndpoints

_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


async def system_resolver(name: str, port: int) -> list[str]:
    """The resolver of the OS (threaded getaddrinfo), one entry per distinct address."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        if e.errno in _NO_SUCH_NAME:
            return []
        raise
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def endpoint_id(address: str, port: int) -> str:
    """`host:port`, with IPv6 literals bracketed as in URLs."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class Discovery:
    def __init__(
        self,
        on_change: Callable[[tuple[str, ...]], None],
        *,
        resolver: Resolver = system_resolver,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._on_change = on_change
        self._resolver = resolver
        self._sleep = sleep
        self._spec: EndpointsSpec | None = None
        self._task: asyncio.Task[None] | None = None
        self.current: tuple[str, ...] = ()
        self.last_error: str | None = None

    async def configure(self, spec: EndpointsSpec) -> None:
        """Follow a (possibly) new endpoints spec; a repeat of the current one is a no-op."""
        if spec == self._spec:
            return
        self._spec = spec
        await cancel_and_wait(self._task)
        self._task = None
        if isinstance(spec, StaticEndpoints):
            self._publish(tuple(spec.addresses))
            return
        await self.refresh()  # the first answer before serving, not a refresh later
        self._task = guarded_task(self._follow(spec), f"dns {spec.name}")

    async def refresh(self) -> tuple[str, ...]:
        """Resolve the DNS name once and publish the result."""
        spec = self._spec
        if not isinstance(spec, DnsEndpoints):
            return self.current
        try:
            addresses = await self._resolver(spec.name, spec.port)
        except OSError as e:
            if self.last_error != str(e):
                log.warning(
                    "resolving %s failed (keeping %d endpoints): %s",
                    spec.name,
                    len(self.current),
                    e,
                )
            self.last_error = str(e)
            return self.current
        self.last_error = None
        self._publish(tuple(sorted(endpoint_id(a, spec.port) for a in addresses)))
        return self.current

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _follow(self, spec: DnsEndpoints) -> None:
        while True:
            await self._sleep(spec.refresh_s)
            await self.refresh()

    def _publish(self, endpoints: tuple[str, ...]) -> None:
        if endpoints != self.current:
            log.info("pool endpoints: %s", ", ".join(endpoints) or "(none)")
            self.current = endpoints
            self._on_change(endpoints)
