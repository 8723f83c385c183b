"""Run a tier process: HTTP server + config subscription + last-good snapshot on disk.

tier1 and tier2 call `run_node` with their own app factory and runtime builder, so
process concerns (signals, graceful stop, disk snapshot, control reconnects) live once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from common.configsync.agent import ConfigAgent, Snapshot
from common.configsync.client import ConfigSubscriber, NodeIdentity
from common.configsync.http import add_config_routes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeSettings:
    tier: str
    host: str
    port: int
    control: list[str]
    node_id: str
    state_dir: Path
    pool: str | None = None
    drain_s: float = 10.0
    advertise: str = ""

    @property
    def state_file(self) -> Path:
        suffix = f"-{self.pool}" if self.pool else ""
        return self.state_dir / f"{self.tier}{suffix}-{self.node_id}.snapshot"


def add_node_arguments(parser: argparse.ArgumentParser, *, default_port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=default_port, help=f"listen port (default {default_port})"
    )
    parser.add_argument(
        "--control",
        default=os.environ.get("STRATA_CONTROL", "127.0.0.1:8091"),
        help="control gRPC addresses, comma-separated (env STRATA_CONTROL; default 127.0.0.1:8091)",
    )
    parser.add_argument(
        "--node-id",
        default=os.environ.get("STRATA_NODE_ID"),
        help="unique node id (env STRATA_NODE_ID; default host-port)",
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("STRATA_STATE_DIR", ".strata/state"),
        help="where the last good snapshot is kept",
    )
    parser.add_argument(
        "--drain-s", type=float, default=10.0, help="seconds to finish in-flight requests on stop"
    )


def settings_from_args(
    args: argparse.Namespace, tier: str, pool: str | None = None
) -> NodeSettings:
    control = [a.strip() for a in args.control.split(",") if a.strip()]
    if not control:
        raise SystemExit("--control needs at least one host:port")
    node_id = args.node_id or f"{tier}-{socket.gethostname()}-{args.port}"
    return NodeSettings(
        tier, args.host, args.port, control, node_id, Path(args.state_dir), pool, args.drain_s
    )


async def serve_node(
    settings: NodeSettings,
    build_runtime: Callable[[Snapshot], Any],
    build_app: Callable[[ConfigAgent[Any]], web.Application] | None = None,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    agent: ConfigAgent[Any] = ConfigAgent(
        settings.tier, build_runtime, pool=settings.pool, state_file=settings.state_file
    )
    if agent.load_from_disk():
        log.info("serving revision %d from disk until control answers", agent.revision)
    app = build_app(agent) if build_app else web.Application()
    add_config_routes(app, agent)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=settings.drain_s
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=True)
    await site.start()
    address = f"{settings.advertise or settings.host}:{settings.port}"
    subscriber = ConfigSubscriber(
        settings.control,
        NodeIdentity(settings.node_id, settings.tier, address, settings.pool),
        agent,
    )
    subscriber.start()
    print(f"{settings.tier} {settings.node_id} listening on http://{address}", flush=True)
    stop = stop or _signal_event()
    try:
        await stop.wait()
    finally:
        await subscriber.stop()
        await runner.cleanup()  # stops accepting, drains in-flight requests up to drain_s


def _signal_event() -> asyncio.Event:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event


def run(coro: Any) -> None:
    """Run with uvloop when installed."""
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)
