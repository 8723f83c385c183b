"""ConfigSubscriber: keep one config stream to any control replica, forever.

Connects to one of the listed control addresses, says who it is and which revision it
holds, applies each snapshot through the agent and answers ACK or NACK. On any failure
it moves to the next address after an exponential backoff with jitter; the agent keeps
serving the last good snapshot meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

from common import wire
from common.configsync.agent import ConfigAgent
from common.tasks import guarded_task

log = logging.getLogger(__name__)

PING_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    node_id: str
    tier: str
    address: str
    pool: str | None = None


class ConfigSubscriber:
    def __init__(
        self,
        addresses: list[str],
        identity: NodeIdentity,
        agent: ConfigAgent[Any],
        *,
        backoff_base_s: float = 0.05,
        backoff_max_s: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("at least one control address is needed")
        self.addresses = list(addresses)
        self.identity = identity
        self.agent = agent
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._rng = rng or random.Random()
        self._index = self._rng.randrange(len(self.addresses))
        self.connected_to: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = guarded_task(self.run(), "config-subscriber")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def run(self) -> None:
        failures = 0
        while True:
            address = self.addresses[self._index % len(self.addresses)]
            try:
                got_snapshot = await self._session(address)
                failures = 0 if got_snapshot else failures + 1
            except (TimeoutError, grpc.RpcError, OSError) as e:
                failures += 1
                log.info("config stream to %s ended: %s", address, _describe(e))
            finally:
                self.connected_to = None
            self._index += 1
            delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** min(failures, 8))
            await asyncio.sleep(delay * (0.5 + self._rng.random()))

    async def _session(self, address: str) -> bool:
        got_snapshot = False
        options = [("grpc.keepalive_time_ms", 5000), ("grpc.keepalive_timeout_ms", 5000)]
        async with aio.insecure_channel(address, options=options) as channel:
            call = channel.stream_stream(
                wire.CONFIG_STREAM_METHOD,
                request_serializer=wire.encode,
                response_deserializer=wire.decode,
            )()
            await call.write(
                {
                    "type": "hello",
                    "node_id": self.identity.node_id,
                    "tier": self.identity.tier,
                    "pool": self.identity.pool,
                    "address": self.identity.address,
                    "revision": self.agent.revision,
                    "checksum": self.agent.checksum,
                }
            )
            self.connected_to = address
            pinger = asyncio.create_task(self._ping(call))
            try:
                while True:
                    msg = await call.read()
                    if msg is aio.EOF:
                        return got_snapshot
                    if not isinstance(msg, dict) or msg.get("type") != "snapshot":
                        continue
                    got_snapshot = True
                    result = self.agent.apply(msg.get("snapshot"))
                    reply: dict[str, Any] = {
                        "type": "ack" if result.ok else "nack",
                        "revision": result.revision,
                        "checksum": result.checksum,
                    }
                    if not result.ok:
                        reply["reason"] = result.reason
                    await call.write(reply)
            finally:
                pinger.cancel()
                call.cancel()

    async def _ping(self, call: Any) -> None:
        while True:
            await asyncio.sleep(PING_EVERY_S)
            await call.write({"type": "ping"})


def _describe(e: BaseException) -> str:
    if isinstance(e, grpc.aio.AioRpcError):
        return f"{e.code().name}: {e.details()}"
    return type(e).__name__
