"""Access log sinks: one JSON line per request.

`BufferedAccessLog` (what `strata tier1` uses) appends encoded lines to a buffer that is
written out every quarter second or every 512 lines: the logging module's per-record
work (a LogRecord, formatting, a flush per line) cost more than the rest of tier1's own
request handling. `LoggingAccessLog` routes lines through the `strata.access` logger,
for embedding and tests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, BinaryIO, Protocol

from common import jsonutil
from common.tasks import cancel_and_wait, guarded_task

log = logging.getLogger("strata.access")


class AccessLog(Protocol):
    def write(self, line: dict[str, Any]) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LoggingAccessLog:
    def write(self, line: dict[str, Any]) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(jsonutil.dumps_str(line))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class NoAccessLog:
    def write(self, line: dict[str, Any]) -> None:
        return None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class BufferedAccessLog:
    def __init__(self, stream: BinaryIO, *, interval_s: float = 0.25, max_lines: int = 512) -> None:
        self._stream = stream
        self._interval_s = interval_s
        self._max_lines = max_lines
        self._lines: list[bytes] = []
        self._task: asyncio.Task[None] | None = None

    def write(self, line: dict[str, Any]) -> None:
        self._lines.append(jsonutil.dumps(line) + b"\n")
        if len(self._lines) >= self._max_lines:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        data, self._lines = b"".join(self._lines), []
        try:
            self._stream.write(data)
            self._stream.flush()
        except OSError as e:  # a full disk must not take requests down
            logging.getLogger(__name__).warning("access log write failed: %s", e)

    async def start(self) -> None:
        self._task = guarded_task(self._run(), "access-log-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self.flush()

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self.flush()
