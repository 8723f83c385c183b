"""AWS event-stream framing (``application/vnd.amazon.eventstream``), encode side (pure).

A message is a 12-byte prelude (total length, headers length, both big-endian uint32,
then the prelude's CRC32), the headers, the payload, and the CRC32 of everything before
it. Each header is a 1-byte name length, the name, a value type (7: string), a 2-byte
value length and the value. ``botocore.eventstream.EventStreamBuffer`` decodes these.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

import orjson

__all__ = ["CONTENT_TYPE", "encode", "event", "exception"]

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


def _headers(items: Iterable[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in items:
        raw_name, raw_value = name.encode(), value.encode()
        out.append(len(raw_name))
        out += raw_name
        out.append(_STRING)
        out += len(raw_value).to_bytes(2, "big")
        out += raw_value
    return bytes(out)


def encode(headers: Iterable[tuple[str, str]], payload: bytes) -> bytes:
    """One event-stream message with string ``headers`` and ``payload``."""
    raw_headers = _headers(headers)
    prelude = _PRELUDE.pack(12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    message = prelude + _CRC.pack(zlib.crc32(prelude)) + raw_headers + payload
    return message + _CRC.pack(zlib.crc32(message))


def event(event_type: str, payload: object) -> bytes:
    """An ``event`` message whose payload is ``payload`` as JSON."""
    headers = (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    )
    return encode(headers, orjson.dumps(payload))


def exception(exception_type: str, message: str) -> bytes:
    """An ``exception`` message, as a stream that fails mid-way ends."""
    headers = (
        (":exception-type", exception_type),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    )
    return encode(headers, orjson.dumps({"message": message}))
