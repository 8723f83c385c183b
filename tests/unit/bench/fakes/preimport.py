"""Import big SDKs once, without pytest's assertion-rewriting import hook.

The ``anthropic`` SDK is ~3,000 modules. Under pytest's rewriting hook, which searches
the import path again for every module it is asked about, importing it takes ~5 s more
than plain Python. Nothing in an SDK is rewritten anyway, so the fake-upstream tests'
conftests import the SDKs here with the hook set aside for those imports. An SDK that is
not installed is left for the tests to skip or fail on.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

__all__ = ["preimport"]


def preimport(*names: str) -> None:
    """Import ``names`` (those not imported yet) with the rewriting hook removed."""
    missing = [name for name in names if name not in sys.modules]
    if not missing:
        return
    try:
        from _pytest.assertion.rewrite import AssertionRewritingHook
    except ImportError:  # pragma: no cover - pytest internals moved: import normally
        hooks = []
    else:
        hooks = [
            (i, f) for i, f in enumerate(sys.meta_path) if isinstance(f, AssertionRewritingHook)
        ]
    for _, hook in hooks:
        sys.meta_path.remove(hook)
    try:
        for name in missing:
            with contextlib.suppress(ModuleNotFoundError):
                importlib.import_module(name)
    finally:
        for index, hook in hooks:
            sys.meta_path.insert(index, hook)
