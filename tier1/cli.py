"""`strata tier1`: the edge process (foundation stage: config sync, health, metrics)."""

from __future__ import annotations

import argparse

from common.configsync.node import add_node_arguments, run, serve_node, settings_from_args
from tier1.runtime import build_runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strata tier1", description="Run the tier1 edge process.")
    add_node_arguments(parser, default_port=8080)
    args = parser.parse_args(argv)
    run(serve_node(settings_from_args(args, "tier1"), build_runtime))
    return 0
