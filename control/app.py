"""Wiring of one control replica: store → ResourceService (+ the quota replica set) →
Distributor, REST + gRPC.

`ControlServer` owns every long-lived piece and starts/stops them in order, so tests,
`strata control` and `strata up` all run the same code.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from grpc import aio

from common.clock import Clock, SystemClock
from common.identity import process_id
from control.api.handlers import add_routes
from control.api.keys import DISTRIBUTOR, METRICS, SERVICE
from control.api.metrics import ApiMetrics
from control.api.middleware import auth_middleware, errors_middleware
from control.distribute import Distributor, grpc_handler
from control.nodes import NodeRegistry
from control.ratelimit.members import MemberWatcher
from control.service import Keys, ResourceService
from control.store.base import ConfigStore

log = logging.getLogger(__name__)


def build_rest_app(
    service: ResourceService, distributor: Distributor, admin_token: str
) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware(admin_token)],
        client_max_size=4 * 1024 * 1024,
    )
    app[SERVICE] = service
    app[DISTRIBUTOR] = distributor
    app[METRICS] = ApiMetrics()
    add_routes(app)
    return app


def load_admin_token(path: Path | None, environ: dict[str, str], *, create: bool) -> str:
    """STRATA_ADMIN_TOKEN wins; else the file; else (local runs) a new one in the file."""
    token = environ.get("STRATA_ADMIN_TOKEN", "").strip()
    if token:
        return token
    if path is not None and path.exists():
        token = path.read_text().strip()
        if token:
            return token
    if path is None or not create:
        raise SystemExit("no admin token: set STRATA_ADMIN_TOKEN or --admin-token-file")
    path.parent.mkdir(parents=True, exist_ok=True)
    token = "st-admin-" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


@dataclass
class ControlServer:
    store: ConfigStore
    admin_token: str
    rest_host: str = "127.0.0.1"
    rest_port: int = 8090
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 8091
    control_id: str = field(default_factory=process_id)
    advertise: str = ""
    keys: Keys = field(default_factory=Keys)
    clock: Clock = field(default_factory=SystemClock)
    coalesce_s: float = 0.005

    def __post_init__(self) -> None:
        self.service = ResourceService(self.store, self.keys)
        self.registry = NodeRegistry(self.store, self.keys, self.control_id, {}, clock=self.clock)
        self.quota_members = MemberWatcher(self.store, self.keys.ratelimit_members)
        self.distributor = Distributor(
            self.service,
            self.registry,
            coalesce_s=self.coalesce_s,
            clock=self.clock,
            members=self.quota_members,
        )
        self._runner: web.AppRunner | None = None
        self._grpc: aio.Server | None = None

    async def start(self) -> None:
        await self.service.start()
        await self.quota_members.start()
        await self.distributor.start()
        self._grpc = aio.server(options=[("grpc.so_reuseport", 0)])
        self._grpc.add_generic_rpc_handlers([grpc_handler(self.distributor)])
        bound = self._grpc.add_insecure_port(f"{self.grpc_host}:{self.grpc_port}")
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {self.grpc_host}:{self.grpc_port}")
        self.grpc_port = bound
        await self._grpc.start()
        app = build_rest_app(self.service, self.distributor, self.admin_token)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.rest_host, self.rest_port)
        await site.start()
        if self.rest_port == 0:
            server = site._server
            assert server is not None and hasattr(server, "sockets")
            self.rest_port = int(server.sockets[0].getsockname()[1])
        self.registry.control_info.update(
            rest=f"{self.advertise or self.rest_host}:{self.rest_port}",
            grpc=f"{self.advertise or self.grpc_host}:{self.grpc_port}",
        )
        await self.registry.start()
        log.info(
            "control %s: REST on %s:%d, gRPC on %s:%d",
            self.control_id,
            self.rest_host,
            self.rest_port,
            self.grpc_host,
            self.grpc_port,
        )

    @property
    def rest_url(self) -> str:
        return f"http://{self.rest_host}:{self.rest_port}"

    @property
    def grpc_address(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    async def stop(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(grace=0.5)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.registry.stop()
        await self.distributor.stop()
        await self.quota_members.stop()
        await self.service.stop()
