"""What a fake upstream received, kept for assertions (``fake.requests``).

Recording keeps references to aiohttp's immutable header and query views and the raw
body bytes; nothing is copied per request. A limit keeps only the newest requests (the
benchmark's long runs); ``None`` keeps them all (tests).
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordedRequest", "Recorder"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One received request. ``headers`` looks names up case-insensitively."""

    instance: str
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    json: Any
    """The parsed body; ``None`` when the body is empty or not JSON."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def to_json(self) -> dict[str, Any]:
        """The ``GET /_fake/requests`` form: header names lower-cased, body in base64."""
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            k = key.lower()
            headers[k] = f"{headers[k]}, {value}" if k in headers else value
        return {
            "instance": self.instance,
            "method": self.method,
            "path": self.path,
            "query": dict(self.query),
            "headers": headers,
            "body_b64": base64.b64encode(self.body).decode(),
            "json": self.json,
        }


class Recorder:
    """The requests one fake received, oldest first."""

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 0:
            raise ValueError("record limit must be >= 0")
        self.limit = limit
        self._items: deque[RecordedRequest] = deque(maxlen=limit)

    @property
    def enabled(self) -> bool:
        return self.limit != 0

    def add(self, item: RecordedRequest) -> None:
        self._items.append(item)

    def all(self) -> list[RecordedRequest]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
