"""`strata tier1`: the OpenAI-compatible edge process."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from typing import Any

from common.configsync.agent import ConfigAgent
from common.configsync.node import (
    NodeSettings,
    add_node_arguments,
    run,
    serve_node,
    settings_from_args,
)
from tier1.app import build_app
from tier1.auth.jwt import JwtSettings
from tier1.runtime import build_runtime
from tier1.settings import Tier1Settings


def _lean_logging() -> None:
    """One access-log line per request: skip what the format never prints (the logging
    HOWTO's "Optimization" section): caller lookup, thread and process names."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def _serve(node: NodeSettings, settings: Tier1Settings) -> None:
    if not logging.getLogger().handlers:  # a spawned worker starts with no logging set up
        level = os.environ.get("STRATA_LOG_LEVEL", "INFO").upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _lean_logging()

    def app_factory(agent: ConfigAgent[Any]) -> Any:
        return build_app(agent, settings)

    run(serve_node(node, build_runtime, app_factory))


def _jwt(args: argparse.Namespace) -> JwtSettings | None:
    if not (args.jwt_jwks_file or args.jwt_jwks_url or args.jwt_hs256_secret_file):
        return None
    secret = None
    algorithms: tuple[str, ...] = ()
    if args.jwt_jwks_file or args.jwt_jwks_url:
        algorithms += ("RS256", "ES256")
    if args.jwt_hs256_secret_file:
        with open(args.jwt_hs256_secret_file) as f:
            secret = f.read().strip()
        if len(secret.encode()) < 32:
            raise SystemExit(
                "strata tier1: the HS256 secret must be at least 32 bytes (RFC 7518 §3.2)"
            )
        algorithms += ("HS256",)
    return JwtSettings(
        algorithms=algorithms,
        issuer=args.jwt_issuer,
        audience=args.jwt_audience,
        consumer_claim=args.jwt_consumer_claim,
        jwks_file=args.jwt_jwks_file,
        jwks_url=args.jwt_jwks_url,
        hs256_secret=secret,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strata tier1", description="Run the tier1 edge process.")
    add_node_arguments(parser, default_port=8080)
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("STRATA_WORKERS", "1")),
        help="processes sharing the port with SO_REUSEPORT (default 1)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=8 * 1024 * 1024,
        help="413 beyond this (default 8 MiB)",
    )
    parser.add_argument(
        "--log-bodies", action="store_true", help="log request bodies (debugging only)"
    )
    parser.add_argument(
        "--access-log",
        default=os.environ.get("STRATA_ACCESS_LOG", "stderr"),
        help="stderr (default), stdout, a file path, logging (through Python logging) or off",
    )
    parser.add_argument(
        "--ratelimit",
        default=os.environ.get("STRATA_RATELIMIT", ""),
        help="quota replicas host:port[,host:port...] (default: the set control publishes)",
    )
    jwt = parser.add_argument_group("JWT authentication (optional; API keys keep working)")
    jwt.add_argument(
        "--jwt-jwks-file", help="JWKS file with the token signing keys (re-read on change)"
    )
    jwt.add_argument(
        "--jwt-jwks-url", help="JWKS URL (cached; refreshed every 5 min and on unknown key ids)"
    )
    jwt.add_argument("--jwt-hs256-secret-file", help="file with the HS256 shared secret")
    jwt.add_argument("--jwt-issuer", help="required `iss`")
    jwt.add_argument("--jwt-audience", help="required `aud`")
    jwt.add_argument(
        "--jwt-consumer-claim", default="sub", help="claim naming the Consumer (default sub)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    settings = Tier1Settings(
        max_body_bytes=args.max_body_bytes,
        log_bodies=args.log_bodies,
        jwt=_jwt(args),
        access_log=args.access_log,
        ratelimit=tuple(a.strip() for a in args.ratelimit.split(",") if a.strip()),
        quota_holders=args.workers,
    )
    node = settings_from_args(args, "tier1")
    if args.workers == 1:
        _serve(node, settings)
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(args.workers):
        worker = NodeSettings(
            node.tier,
            node.host,
            node.port,
            node.control,
            f"{node.node_id}-w{i}",
            node.state_dir,
            node.pool,
            node.drain_s,
        )
        p = ctx.Process(target=_serve, args=(worker, settings), name=f"tier1-w{i}")
        p.start()
        procs.append(p)

    def forward(signum: int, frame: Any) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # a worker that dies takes the pod down with it, so the orchestrator restarts it
    # instead of probes passing on the survivors
    multiprocessing.connection.wait([p.sentinel for p in procs])
    forward(signal.SIGTERM, None)
    for p in procs:
        p.join()
    return 0 if all(p.exitcode == 0 for p in procs) else 1


if __name__ == "__main__":
    sys.exit(main())
