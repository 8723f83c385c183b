"""`strata ratelimit`: one quota replica (gRPC Sync + a side port for metrics and health).

Flags follow `strata control`: `--etcd-endpoints` (alias `--etcd`, env
STRATA_ETCD_ENDPOINTS) and `--key-root` (alias `--root`) name the same store and key
root control uses, so control sees the replica register and publishes it to tier1.
Unlike control it never starts an embedded etcd: without a reachable store it serves
from memory and keeps retrying; `--no-store` skips the store on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from common.identity import process_id
from control.ratelimit.service import RateLimitServer
from control.service import Keys
from control.store.base import ConfigStore
from control.store.etcd import EtcdStore

log = logging.getLogger(__name__)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="strata ratelimit",
        description="Run a quota replica: global rate limits and token budgets for tier1.",
    )
    p.add_argument(
        "--listen",
        type=_host_port,
        default=("127.0.0.1", 8092),
        metavar="HOST:PORT",
        help="gRPC listen address (default 127.0.0.1:8092)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=8093,
        help="side port for /metrics, /healthz, /readyz on the listen host (default 8093)",
    )
    p.add_argument(
        "--advertise",
        default=os.environ.get("STRATA_ADVERTISE_ADDRESS", ""),
        metavar="HOST:PORT",
        help="address tier1 reaches this replica at (default the listen address)",
    )
    p.add_argument(
        "--etcd-endpoints",
        "--etcd",
        dest="etcd",
        default=os.environ.get("STRATA_ETCD_ENDPOINTS", "http://127.0.0.1:2379"),
        metavar="URL[,URL]",
        help="etcd endpoints, comma-separated (env STRATA_ETCD_ENDPOINTS; "
        "default http://127.0.0.1:2379, where `strata control` starts its embedded etcd)",
    )
    p.add_argument(
        "--key-root",
        "--root",
        dest="root",
        default="/strata/",
        help="etcd key prefix, the same as control's (default /strata/)",
    )
    p.add_argument(
        "--no-store",
        action="store_true",
        help="memory only: no checkpoints (long windows restart empty), no registration "
        "(tier1 must be pointed at this replica some other way)",
    )
    p.add_argument(
        "--lease-s",
        type=float,
        default=1.0,
        help="lifetime of an allotment granted to tier1 (default 1.0)",
    )
    p.add_argument(
        "--checkpoint-s",
        type=float,
        default=2.0,
        help="seconds between checkpoints of long-window counters (default 2.0)",
    )
    p.add_argument(
        "--replica-id",
        default=os.environ.get("STRATA_NODE_ID") or process_id(),
        help="unique replica id, the name of its membership key (default host-pid)",
    )
    return p


def server_from_args(args: argparse.Namespace, store: ConfigStore | None) -> RateLimitServer:
    root = args.root if args.root.endswith("/") else args.root + "/"
    host, port = args.listen
    return RateLimitServer(
        store,
        host=host,
        port=port,
        metrics_port=args.metrics_port,
        advertise=args.advertise,
        replica_id=args.replica_id,
        keys=Keys(root),
        lease_s=args.lease_s,
        checkpoint_s=args.checkpoint_s,
    )


async def serve(args: argparse.Namespace) -> None:
    endpoints = [e.strip() for e in args.etcd.split(",") if e.strip()]
    store = None if args.no_store else EtcdStore(endpoints, timeout_s=2.0)
    server = server_from_args(args, store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        where = "memory only" if store is None else f"etcd {','.join(endpoints)} {server.keys.root}"
        print(
            f"ratelimit {server.replica_id}: gRPC {server.address} (advertised "
            f"{server.advertised})  metrics :{server.metrics_port}  store {where}",
            flush=True,
        )
        await stop.wait()
    finally:
        await server.stop()  # leave the replica set, stop serving, last checkpoint
        if store is not None:
            await store.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.lease_s <= 0 or args.checkpoint_s <= 0:
        raise SystemExit("strata ratelimit: --lease-s and --checkpoint-s must be > 0")
    if not logging.getLogger().handlers:
        level = os.environ.get("STRATA_LOG_LEVEL", "INFO").upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))
    return 0
