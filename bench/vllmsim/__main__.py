"""``python -m bench.vllmsim`` is ``strata sim``."""

from bench.vllmsim.cli import main

raise SystemExit(main())
