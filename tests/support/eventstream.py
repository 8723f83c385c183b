"""Test scaffolding: encode AWS event-stream messages, as Bedrock's ConverseStream sends them.

Wire format (AWS event-stream encoding, as botocore/eventstream.py decodes it):

    total length   uint32 big-endian (the whole message, CRCs included)
    headers length uint32
    prelude CRC    CRC32 of the 8 bytes above
    headers        name length (1 byte), name, value type (1 byte; 7 = string),
                   value length (uint16), value
    payload        the event's JSON
    message CRC    CRC32 of everything before it

Product code decodes with botocore; this encoder exists only to build recorded streams.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from common import jsonutil

_STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return out


def message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = _headers(headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + encoded + payload
    return body + struct.pack("!I", zlib.crc32(body) & 0xFFFFFFFF)


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """An event as Bedrock sends it, with its `p` padding field (which clients ignore)."""
    return message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        jsonutil.dumps({**payload, "p": "abcdefghijklmnopq"}),
    )


def exception(exception_type: str, text: str) -> bytes:
    return message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        jsonutil.dumps({"message": text}),
    )
