"""`strata bench tier2`: tier2's picker against baselines and an oracle, in virtual time.

See :mod:`bench.tier2_bench.run` for the options and :mod:`bench.tier2_bench.scenarios`
for what runs.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `strata bench tier2 ARGS` (imports the harness only when run)."""
    from bench.tier2_bench.run import main as run_main

    return run_main(argv)


__all__ = ["main"]
