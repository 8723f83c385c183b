"""The one JSON facade: orjson on the hot path, one place to change engines."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any, *, pretty: bool = False, sort_keys: bool = False) -> bytes:
    """Serialize to UTF-8 JSON bytes."""
    option = 0
    if pretty:
        option |= orjson.OPT_INDENT_2
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    return orjson.dumps(obj, option=option)


def dumps_str(obj: Any, *, pretty: bool = False) -> str:
    return dumps(obj, pretty=pretty).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; raises JSONDecodeError (a ValueError) on bad input."""
    return orjson.loads(data)
