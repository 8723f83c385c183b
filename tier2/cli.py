"""`strata tier2 --pool NAME`: the per-pool picker process (foundation stage)."""

from __future__ import annotations

import argparse

from common.configsync.node import add_node_arguments, run, serve_node, settings_from_args
from tier2.runtime import build_runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strata tier2", description="Run a tier2 process for one pool."
    )
    parser.add_argument(
        "--pool", required=True, help="name of the Pool resource this process serves"
    )
    add_node_arguments(parser, default_port=8180)
    args = parser.parse_args(argv)
    run(serve_node(settings_from_args(args, "tier2", pool=args.pool), build_runtime))
    return 0
