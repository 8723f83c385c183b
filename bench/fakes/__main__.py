"""``python -m bench.fakes``: serve one fake upstream (see :mod:`bench.fakes.cli`)."""

from bench.fakes.cli import main

raise SystemExit(main())
