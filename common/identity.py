"""Names for this process that are unique on a network: host and pid."""

from __future__ import annotations

import os
import socket


def process_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
