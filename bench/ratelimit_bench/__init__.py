"""`strata bench ratelimit`: the hot-path cost and the accuracy of global rate limits.

See :mod:`bench.ratelimit_bench.run` for the method.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `strata bench ratelimit ARGS` (imports the harness only when run)."""
    from bench.ratelimit_bench.run import main as run_main

    return run_main(argv)


__all__ = ["main"]
