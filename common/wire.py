"""msgpack codecs for grpcio: services are declared by method name, no protoc step.

grpcio accepts any (de)serializer callables, so a generic handler plus these two
functions give typed-enough RPCs whose messages are plain dicts.
"""

from __future__ import annotations

from typing import Any

import msgpack


def encode(message: Any) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


CONFIG_SERVICE = "strata.config.v1.ConfigSync"
CONFIG_STREAM_METHOD = f"/{CONFIG_SERVICE}/Stream"
