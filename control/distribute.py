"""The config stream: one bidirectional gRPC stream per node (msgpack, no protoc).

Node → control: hello{node_id, tier, pool, address, revision, checksum}, then
ack{revision, checksum} / nack{revision, checksum, reason} / ping.
Control → node: snapshot{snapshot} whenever a newer one concerns the node.

A snapshot is sent when its checksum differs from the node's and its revision is
newer, so a node that moves between replicas is not sent what it already runs.
Writes are coalesced: a burst within `coalesce_s` compiles and sends once.

The tier1 snapshot also carries the live quota replica addresses (`members`); a change
of that set recompiles and pushes like a write. Its revision is the larger of the
resource and member revisions, so it never goes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from grpc import aio

from common import wire
from common.clock import Clock, SystemClock
from common.errors import ValidationFailed
from common.tasks import cancel_and_wait, guarded_task
from control.compile import dump_resource, tier1_wire, tier2_wires
from control.nodes import NodeRegistry, NodeStatus
from control.service import ResourceService

log = logging.getLogger(__name__)


class MemberSource(Protocol):
    """The quota replica set (control.ratelimit.members.MemberWatcher)."""

    @property
    def addresses(self) -> tuple[str, ...]: ...

    @property
    def revision(self) -> int: ...

    def subscribe(self, listener: Callable[[], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class Wire:
    """One snapshot ready to send: encoded once, sent to many nodes."""

    revision: int
    checksum: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class Compiled:
    tier1: Wire | None
    tier2: dict[str, Wire]
    error: str = ""


def _wire(data: dict[str, Any]) -> Wire:
    return Wire(
        data["revision"], data["checksum"], wire.encode({"type": "snapshot", "snapshot": data})
    )


@dataclass
class Distributor:
    service: ResourceService
    registry: NodeRegistry
    coalesce_s: float = 0.005
    """Delay after a quiet period: lets a burst of writes land in one snapshot."""
    busy_interval_s: float = 0.05
    """Minimum spacing of snapshots while writes keep coming, so a write storm costs
    at most 1/busy_interval_s pushes per node per second."""
    clock: Clock = field(default_factory=SystemClock)
    members: MemberSource | None = None
    compiled: Compiled | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _new_compiled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (and replaced by a fresh one) each time `compiled` changes."""
    _task: asyncio.Task[None] | None = None
    _dumps: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    sessions: int = 0

    async def start(self) -> None:
        self.service.subscribe(self._changed.set)
        if self.members is not None:
            self.members.subscribe(self._changed.set)
        self._recompile()
        self._task = guarded_task(self._compile_loop(), "compile-loop")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _compile_loop(self) -> None:
        last = -1e9
        while True:
            await self._changed.wait()
            now = self.clock.monotonic()
            busy = now - last < self.busy_interval_s * 2
            await asyncio.sleep(
                max(self.coalesce_s, self.busy_interval_s - (now - last))
                if busy
                else self.coalesce_s
            )
            self._changed.clear()
            self._recompile()
            last = self.clock.monotonic()
            fired, self._new_compiled = self._new_compiled, asyncio.Event()
            fired.set()

    def _dump(self, resource: Any) -> dict[str, Any]:
        key = (resource.kind, resource.name, resource.revision or 0)
        cached = self._dumps.get(key)
        if cached is None:
            cached = self._dumps[key] = dump_resource(resource)
        return cached

    def _recompile(self) -> None:
        cfg = self.service.config()
        live = {(r.kind, r.name, r.revision or 0) for r in cfg}
        for key in [k for k in self._dumps if k not in live]:
            del self._dumps[key]
        prev = self.compiled
        revision = self.service.revision
        ratelimit: tuple[str, ...] = ()
        if self.members is not None:
            revision = max(revision, self.members.revision)
            ratelimit = self.members.addresses
        try:
            t1 = tier1_wire(cfg, revision, self._dump, ratelimit=ratelimit)
        except ValidationFailed as e:
            # only reachable if the store was edited behind control's back
            log.error(
                "stored configuration does not compile; nodes keep their last snapshot: %s", e
            )
            self.compiled = Compiled(
                prev.tier1 if prev else None, prev.tier2 if prev else {}, error=str(e)
            )
            return
        tier1 = (
            prev.tier1
            if prev and prev.tier1 and prev.tier1.checksum == t1["checksum"]
            else _wire(t1)
        )
        tier2 = {}
        for name, data in tier2_wires(cfg, self._dump).items():
            old = prev.tier2.get(name) if prev else None
            tier2[name] = (
                old if old is not None and old.checksum == data["checksum"] else _wire(data)
            )
        self.compiled = Compiled(tier1, tier2)

    def for_node(self, tier: str, pool: str | None) -> Wire | None:
        c = self.compiled
        if c is None:
            return None
        if tier == "tier1":
            return c.tier1
        return c.tier2.get(pool) if pool is not None else None

    # -- the stream handler ---------------------------------------------------------------
    async def stream(self, context: aio.ServicerContext[Any, Any]) -> None:
        hello = await context.read()
        if hello is aio.EOF or not isinstance(hello, dict) or hello.get("type") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first message must be hello")
            return
        tier = hello.get("tier")
        if tier not in ("tier1", "tier2") or not hello.get("node_id"):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "hello needs node_id and tier tier1|tier2"
            )
            return
        if tier == "tier2" and not hello.get("pool"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a tier2 node must name its pool")
            return
        now = self.clock.wall()
        status = NodeStatus(
            node_id=str(hello["node_id"]),
            tier=tier,
            pool=hello.get("pool"),
            address=str(hello.get("address", "")),
            control=self.registry.control_id,
            applied_revision=int(hello.get("revision") or 0),
            applied_checksum=str(hello.get("checksum") or ""),
            connected_at=now,
            last_seen=now,
        )
        self.registry.update(status)
        self.sessions += 1
        reader = asyncio.create_task(self._read(context, status))
        try:
            await self._send_loop(context, status, reader)
        finally:
            self.sessions -= 1
            reader.cancel()
            self.registry.remove(status.node_id)

    async def _send_loop(
        self, context: aio.ServicerContext[Any, Any], status: NodeStatus, reader: asyncio.Task[None]
    ) -> None:
        sent_checksum = status.applied_checksum
        sent_revision = status.applied_revision
        while not reader.done():
            changed = self._new_compiled  # taken before reading `compiled`: no lost wakeup
            snap = self.for_node(status.tier, status.pool)
            if snap is None and status.tier == "tier2" and not status.message:
                status.message = f"pool {status.pool!r} is not configured"
                self.registry.update(status)
            if (
                snap is not None
                and snap.checksum != sent_checksum
                and snap.revision >= sent_revision
            ):
                if status.message:
                    status.message = ""
                await context.write(snap.frame)
                sent_checksum, sent_revision = snap.checksum, snap.revision
                status.pending_revision = snap.revision
                self.registry.update(status, when="lazy")
            waiter = asyncio.ensure_future(changed.wait())
            done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()

    async def _read(self, context: aio.ServicerContext[Any, Any], status: NodeStatus) -> None:
        while True:
            msg = await context.read()
            if msg is aio.EOF:
                return
            if not isinstance(msg, dict):
                continue
            status.last_seen = self.clock.wall()
            kind = msg.get("type")
            if kind == "ack":
                status.applied_revision = int(msg.get("revision") or 0)
                status.applied_checksum = str(msg.get("checksum") or "")
                status.pending_revision = 0
                self.registry.update(status, when="soon")
            elif kind == "nack":
                status.last_nack = {
                    "revision": int(msg.get("revision") or 0),
                    "reason": str(msg.get("reason") or "")[:2000],
                    "at": status.last_seen,
                }
                status.pending_revision = 0
                log.warning(
                    "node %s rejected revision %s: %s",
                    status.node_id,
                    status.last_nack["revision"],
                    status.last_nack["reason"],
                )
                self.registry.update(status)
            else:
                self.registry.update(status, when="lazy")


def _encode(message: Any) -> bytes:
    return message if isinstance(message, bytes) else wire.encode(message)


def grpc_handler(distributor: Distributor) -> grpc.GenericRpcHandler:
    async def stream(request_iterator: Any, context: aio.ServicerContext[Any, Any]) -> None:
        await distributor.stream(context)

    method = grpc.stream_stream_rpc_method_handler(
        stream, request_deserializer=wire.decode, response_serializer=_encode
    )
    return grpc.method_handlers_generic_handler(wire.CONFIG_SERVICE, {"Stream": method})
