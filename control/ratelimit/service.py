"""The quota replica: the Sync gRPC method over a QuotaTable, plus its process wiring.

`QuotaService.sync` validates a request and runs `QuotaTable.sync` synchronously, so
each Sync is atomic with respect to every other (one event loop, no await inside the
arithmetic). Leases run on the monotonic clock, windows on the wall clock.

`RateLimitServer` owns every long-lived piece and starts/stops them in order:
checkpoint load → gRPC → side port (/metrics, /healthz, /readyz) → window expiry →
membership; stopping leaves the replica set first (tier1 moves its keys elsewhere),
then stops serving, then writes a last checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from aiohttp import web
from grpc import aio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common import jsonutil, wire
from common.clock import Clock, SystemClock
from common.identity import process_id
from common.quota.protocol import QUOTA_SERVICE, SyncEntry
from common.quota.table import QuotaTable
from common.tasks import cancel_and_wait, guarded_task
from control.ratelimit.checkpoint import Checkpointer
from control.ratelimit.members import MemberRegistration
from control.ratelimit.metrics import QuotaServiceMetrics
from control.service import Keys
from control.store.base import ConfigStore

log = logging.getLogger(__name__)

MAX_ENTRIES = 100_000
MAX_KEY_CHARS = 1024


class InvalidSync(ValueError):
    """The request is not a Sync; the message says which part is wrong."""


def _number(entry: dict[Any, Any], name: str, index: int) -> float:
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSync(f"entries[{index}].{name} must be a number, got {_kind(value)}")
    if not math.isfinite(value) or value < 0:
        raise InvalidSync(f"entries[{index}].{name} must be finite and >= 0, got {value}")
    return float(value)


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def parse_sync(request: Any) -> tuple[str, list[SyncEntry]]:
    """The holder and entries of a decoded Sync request; raises InvalidSync."""
    if not isinstance(request, dict):
        raise InvalidSync(f"a Sync request is a map {{holder, entries}}, got {_kind(request)}")
    holder = request.get("holder")
    if not isinstance(holder, str) or not holder:
        raise InvalidSync("holder must be a non-empty string naming the tier1 process")
    raw = request.get("entries")
    if not isinstance(raw, list):
        raise InvalidSync(f"entries must be a list, got {_kind(raw)}")
    if len(raw) > MAX_ENTRIES:
        raise InvalidSync(f"at most {MAX_ENTRIES} entries per Sync, got {len(raw)}")
    entries: list[SyncEntry] = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict):
            raise InvalidSync(f"entries[{i}] must be a map {{k, l, e, d, w, p}}, got {_kind(e)}")
        key = e.get("k")
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
            raise InvalidSync(f"entries[{i}].k must be a string of 1-{MAX_KEY_CHARS} characters")
        persist = e.get("p", 0)
        if persist not in (0, 1):  # True and False compare equal to 1 and 0
            raise InvalidSync(f"entries[{i}].p must be 0 or 1, got {persist!r}")
        entry: SyncEntry = {
            "k": key,
            "l": _number(e, "l", i),
            "e": _number(e, "e", i),
            "d": _number(e, "d", i),
            "w": _number(e, "w", i),
            "p": int(persist),
        }
        if "n" in e:
            entry["n"] = _number(e, "n", i)
        entries.append(entry)
    return holder, entries


@dataclass
class QuotaService:
    table: QuotaTable
    metrics: QuotaServiceMetrics
    clock: Clock = field(default_factory=SystemClock)
    checkpoint: Checkpointer | None = None

    async def sync(self, request: Any) -> dict[str, Any]:
        """Answer one decoded Sync request; raises InvalidSync."""
        try:
            holder, entries = parse_sync(request)
        except InvalidSync:
            self.metrics.invalid()
            raise
        if self.checkpoint is not None:
            await self.checkpoint.prepare(entries)
        now, wall = self.clock.monotonic(), self.clock.wall()
        grants, stats = self.table.sync(holder, entries, now, wall)
        self.metrics.synced(stats)
        return {"entries": grants, "holders": self.table.active_holders(now), "now": wall}

    def expire(self) -> None:
        """Forget counters whose window ended (and delete the persisted ones)."""
        persisted = self.table.expire(self.clock.wall())
        if persisted and self.checkpoint is not None:
            self.checkpoint.forget(persisted)


def grpc_handler(service: QuotaService) -> grpc.GenericRpcHandler:
    async def sync(raw: bytes, context: aio.ServicerContext[Any, Any]) -> dict[str, Any]:
        # decoded here rather than by grpcio, so garbage gets INVALID_ARGUMENT, not INTERNAL
        try:
            request = wire.decode(raw)
        except Exception as e:
            service.metrics.invalid()
            await _abort(context, f"request is not msgpack: {type(e).__name__}")
        try:
            return await service.sync(request)
        except InvalidSync as e:
            await _abort(context, str(e))

    method = grpc.unary_unary_rpc_method_handler(sync, response_serializer=wire.encode)
    return grpc.method_handlers_generic_handler(QUOTA_SERVICE, {"Sync": method})


async def _abort(context: aio.ServicerContext[Any, Any], message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("abort returned")  # grpc raises; this satisfies NoReturn


@dataclass
class RateLimitServer:
    store: ConfigStore | None
    """None: memory only (no durability, no membership)."""
    host: str = "127.0.0.1"
    port: int = 8092
    metrics_port: int | None = 8093
    """Side port for /metrics, /healthz and /readyz (0: any free port; None: none)."""
    advertise: str = ""
    """host:port tier1 reaches this replica at (default host:port)."""
    replica_id: str = field(default_factory=process_id)
    keys: Keys = field(default_factory=Keys)
    lease_s: float = 1.0
    checkpoint_s: float = 2.0
    expire_every_s: float = 1.0
    member_ttl_s: int = 10
    member_refresh_s: float = 3.0
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        self.table = QuotaTable(lease_s=self.lease_s)
        self.metrics = QuotaServiceMetrics()
        self.checkpoint = (
            Checkpointer(
                self.store,
                self.table,
                self.keys.ratelimit_counters,
                self.metrics,
                self.clock,
                interval_s=self.checkpoint_s,
            )
            if self.store is not None
            else None
        )
        self.service = QuotaService(self.table, self.metrics, self.clock, self.checkpoint)
        self.metrics.watch_table(
            self.table, self.clock, self.checkpoint.lag if self.checkpoint else None
        )
        self.membership: MemberRegistration | None = None
        self._grpc: aio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._started = False
        self.serving = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def advertised(self) -> str:
        if self.advertise:
            return self.advertise
        host = socket.gethostname() if self.host in ("", "0.0.0.0", "::") else self.host
        return f"{host}:{self.port}"

    @property
    def ready(self) -> bool:
        return self.serving and (self.checkpoint is None or self.checkpoint.loaded)

    async def start(self) -> None:
        self._started = True
        if self.checkpoint is not None:
            await self.checkpoint.start()
        self._grpc = aio.server(options=[("grpc.so_reuseport", 0)])
        self._grpc.add_generic_rpc_handlers([grpc_handler(self.service)])
        bound = self._grpc.add_insecure_port(self.address)
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {self.address}")
        self.port = bound
        await self._grpc.start()
        if self.metrics_port is not None:
            await self._start_side_port()
        self._expiry = guarded_task(self._expire_loop(), "quota-expiry")
        self.serving = True
        if self.store is not None:
            checkpoint = self.checkpoint
            self.membership = MemberRegistration(
                self.store,
                self.keys.ratelimit_members + self.replica_id,
                self.advertised,
                ttl_s=self.member_ttl_s,
                refresh_s=self.member_refresh_s,
                gate=lambda: checkpoint is None or checkpoint.loaded,
            )
            await self.membership.start()

    async def _start_side_port(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.metrics_port)
        await site.start()
        if self.metrics_port == 0:
            server = site._server
            assert server is not None and hasattr(server, "sockets")
            self.metrics_port = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.membership is not None:
            await self.membership.stop()
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)
        self.serving = False
        await cancel_and_wait(self._expiry)
        if self.checkpoint is not None:
            await self.checkpoint.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.expire_every_s)
            self.service.expire()

    # -- side port ------------------------------------------------------------------------
    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.checkpoint is None:
            store = "none (memory only)"
        else:
            store = "loaded" if self.checkpoint.loaded else "not loaded yet (store unreachable)"
        body = {
            "ready": self.ready,
            "replica_id": self.replica_id,
            "address": self.advertised,
            "store": store,
            "registered": self.membership is not None and self.membership.registered,
        }
        return _json(body, 200 if self.ready else 503)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=jsonutil.dumps(data), status=status, content_type="application/json")
