"""`strata tier2 --pool NAME`: the endpoint picker and proxy of one pool.

One process, one event loop (uvloop when installed): the ledger must see every pick
this replica makes, so tier2 scales by replicas, never by worker processes.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from common.configsync.agent import ConfigAgent
from common.configsync.node import add_node_arguments, run, serve_node, settings_from_args
from tier2.app import build_app
from tier2.runtime import build_runtime
from tier2.settings import Tier2Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strata tier2", description="Run the tier2 endpoint picker for one pool."
    )
    parser.add_argument(
        "--pool", required=True, help="name of the Pool resource this process serves"
    )
    add_node_arguments(parser, default_port=8180)
    defaults = Tier2Settings()
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        help="413 beyond this (default 8 MiB)",
    )
    parser.add_argument(
        "--connect-timeout-s",
        type=float,
        default=defaults.connect_timeout_s,
        help="seconds to reach a pod before trying the next-best one (default 2)",
    )
    parser.add_argument(
        "--stream-idle-s",
        type=float,
        default=defaults.stream_idle_s,
        help="seconds a pod may stay silent before the request is cut (default 300)",
    )
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        level = os.environ.get("STRATA_LOG_LEVEL", "INFO").upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Tier2Settings(
        max_body_bytes=args.max_body_bytes,
        connect_timeout_s=args.connect_timeout_s,
        stream_idle_s=args.stream_idle_s,
    )

    def app_factory(agent: ConfigAgent[Any]) -> Any:
        return build_app(agent, settings)

    node = settings_from_args(args, "tier2", pool=args.pool)
    run(serve_node(node, build_runtime, app_factory))
    return 0
