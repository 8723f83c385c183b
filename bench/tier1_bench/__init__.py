"""`strata bench tier1`: tier1 against a bare aiohttp proxy and LiteLLM, one core each.

See :mod:`bench.tier1_bench.run` for the layout and the method.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `strata bench tier1 ARGS` (imports the harness only when run)."""
    from bench.tier1_bench.run import main as run_main

    return run_main(argv)


__all__ = ["main"]
