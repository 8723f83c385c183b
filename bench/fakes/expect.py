"""Check a received request against a Script's ``expect-*`` keys (pure).

:func:`check` returns one human-readable line per differing field, e.g.
``body messages[0].content: expected 'hi', got 'hello'`` or
``header authorization: expected absent, got 'Bearer x'``; an empty list means a match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.fakes.script import Script

__all__ = ["Observed", "check", "subset_diff"]

_ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Observed:
    """What the fake saw. ``headers`` must look names up case-insensitively."""

    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    model: str | None


def check(script: Script, seen: Observed) -> list[str]:
    diffs: list[str] = []
    if script.expect_path is not None and script.expect_path != seen.path:
        diffs.append(f"path: expected {script.expect_path!r}, got {seen.path!r}")
    if script.expect_model is not None and script.expect_model != seen.model:
        diffs.append(f"model: expected {script.expect_model!r}, got {_opt(seen.model)}")
    if script.expect_query is not None:
        diffs.extend(_map_diff("query", script.expect_query, seen.query))
    if script.expect_headers is not None:
        diffs.extend(_map_diff("header", script.expect_headers, seen.headers))
    if script.expect_body is not None:
        if not isinstance(seen.body, dict):
            got = "no JSON body" if seen.body is None else _show(seen.body)
            diffs.append(f"body: expected a JSON object, got {got}")
        else:
            diffs.extend(f"body {line}" for line in subset_diff(script.expect_body, seen.body))
    return diffs


def _map_diff(what: str, expected: Mapping[str, str | None], got: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for name, want in expected.items():
        have = got.get(name)
        if want is None:
            if have is not None:
                out.append(f"{what} {name}: expected absent, got {have!r}")
        elif have != want:
            out.append(f"{what} {name}: expected {want!r}, got {_opt(have)}")
    return out


def subset_diff(expected: Any, got: Any, path: str = "") -> list[str]:
    """Differences where ``got`` does not contain ``expected``.

    Objects: every expected key must match (a ``None`` value means the key is absent);
    extra keys in ``got`` are fine. Arrays: same length, element by element. Scalars:
    equal, with ``true`` never equal to ``1``.
    """
    where = path or "(root)"
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{where}: expected an object, got {_show(got)}"]
        out: list[str] = []
        for key, want in expected.items():
            sub = f"{path}.{key}" if path else str(key)
            if want is None:
                if key in got:
                    out.append(f"{sub}: expected absent, got {_show(got[key])}")
            elif key not in got:
                out.append(f"{sub}: expected {_show(want)}, got {_ABSENT}")
            else:
                out.extend(subset_diff(want, got[key], sub))
        return out
    if isinstance(expected, list):
        if not isinstance(got, list):
            return [f"{where}: expected an array, got {_show(got)}"]
        if len(expected) != len(got):
            return [f"{where}: expected {len(expected)} items, got {len(got)}"]
        out = []
        for i, (want, have) in enumerate(zip(expected, got, strict=True)):
            out.extend(subset_diff(want, have, f"{path}[{i}]"))
        return out
    if not _same(expected, got):
        return [f"{where}: expected {_show(expected)}, got {_show(got)}"]
    return []


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _opt(value: str | None) -> str:
    return _ABSENT if value is None else repr(value)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
