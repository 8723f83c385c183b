"""The last good snapshot on disk, so a node restarts and serves without control."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from common import wire

log = logging.getLogger(__name__)


def save(path: Path, data: Any) -> None:
    """Write atomically (temp file + rename): a crash leaves the old or the new file,
    never half of one. The file holds secrets, so it is private to the user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(wire.encode(data))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load(path: Path) -> Any | None:
    try:
        return wire.decode(path.read_bytes())
    except FileNotFoundError:
        return None
    except Exception as e:  # corrupt or from another version: start without it
        log.warning("ignoring unreadable snapshot file %s: %s", path, type(e).__name__)
        return None
