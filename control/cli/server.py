"""`strata control`: one control replica (REST + gRPC), with embedded etcd if none given."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from control.app import ControlServer, load_admin_token
from control.embedded import EmbeddedEtcd
from control.store.etcd import EtcdStore

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rest-host", default="127.0.0.1")
    p.add_argument("--rest-port", type=int, default=8090)
    p.add_argument("--grpc-host", default="127.0.0.1")
    p.add_argument("--grpc-port", type=int, default=8091)
    p.add_argument(
        "--etcd-endpoints",
        default=os.environ.get("STRATA_ETCD_ENDPOINTS", ""),
        help="host:port[,host:port...] of an etcd cluster (≥ 3.5.6 in production); "
        "empty starts the bundled etcd under --data-dir (local use only)",
    )
    p.add_argument(
        "--data-dir", default=".strata", help="local state: embedded etcd data, admin token"
    )
    p.add_argument("--embedded-etcd-port", type=int, default=2379)
    p.add_argument(
        "--admin-token-file",
        default=os.environ.get("STRATA_ADMIN_TOKEN_FILE"),
        help="file holding the operators' bearer token (env STRATA_ADMIN_TOKEN wins)",
    )
    p.add_argument(
        "--create-admin-token",
        action="store_true",
        help="generate the token file when it is missing (local runs)",
    )
    p.add_argument(
        "--node-id", default=os.environ.get("STRATA_NODE_ID"), help="replica id (default host-pid)"
    )
    p.add_argument(
        "--advertise",
        default=os.environ.get("STRATA_ADVERTISE_ADDRESS", ""),
        help="address other processes reach this replica at",
    )
    p.add_argument("--key-root", default="/strata/", help="etcd key prefix")


async def serve(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir)
    token_file = Path(args.admin_token_file) if args.admin_token_file else data_dir / "admin-token"
    create = args.create_admin_token or not args.etcd_endpoints
    token = load_admin_token(token_file, dict(os.environ), create=create)
    embedded: EmbeddedEtcd | None = None
    endpoints = [e.strip() for e in args.etcd_endpoints.split(",") if e.strip()]
    if not endpoints:
        embedded = EmbeddedEtcd(data_dir / "etcd", client_port=args.embedded_etcd_port)
        print(
            f"starting embedded etcd on 127.0.0.1:{args.embedded_etcd_port} "
            "(local use only; production needs etcd >= 3.5.6)",
            flush=True,
        )
        await embedded.start_async()
        endpoints = [embedded.endpoint]
    from control.service import Keys

    store = EtcdStore(endpoints)
    kwargs = {"control_id": args.node_id} if args.node_id else {}
    server = ControlServer(
        store,
        token,
        rest_host=args.rest_host,
        rest_port=args.rest_port,
        grpc_host=args.grpc_host,
        grpc_port=args.grpc_port,
        advertise=args.advertise,
        keys=Keys(args.key_root),
        **kwargs,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        print(
            f"control {server.control_id}: REST {server.rest_url}  gRPC {server.grpc_address}  "
            f"etcd {','.join(endpoints)}  admin token in {token_file if token_file.exists() else 'STRATA_ADMIN_TOKEN'}",
            flush=True,
        )
        await stop.wait()
    finally:
        await server.stop()
        await store.close()
        if embedded is not None:
            embedded.stop()
