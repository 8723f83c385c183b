"""Server-sent events, sans-IO: bytes in (split anywhere), complete events out.

Only what the gateway needs: events end at a blank line; `data:` lines are joined with
"\\n"; comments and other fields are kept raw so a relay can forward them untouched.
Line endings may be \\n, \\r\\n or \\r (the SSE spec allows all three).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    raw: bytes
    """The event as received, including its terminating blank line."""
    data: bytes
    """The joined `data:` payload (b"" if none)."""


class SSEDecoder:
    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk if self._buf else chunk
        hold = b""
        if buf.endswith(b"\r"):  # may be the first half of \r\n: decide next time
            buf, hold = buf[:-1], b"\r"
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            block = buf[start:end]
            events.append(Event(block + b"\n\n", _data(block)))
            start = end + 2
        self._buf = buf[start:] + hold
        return events

    def flush(self) -> list[Event]:
        """Whatever is left when the stream ends (a last event without a blank line)."""
        rest, self._buf = self._buf.replace(b"\r", b"\n").strip(b"\n"), b""
        return [Event(rest + b"\n\n", _data(rest))] if rest else []


def _data(block: bytes) -> bytes:
    if block.startswith(b"data: ") and b"\n" not in block:
        return block[6:]  # the common case: one data line
    parts = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts)


def encode_data(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
