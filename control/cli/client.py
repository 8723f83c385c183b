"""A small blocking client for control's REST API, used by the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from common import jsonutil

DEFAULT_SERVER = "http://127.0.0.1:8090"
DEFAULT_TOKEN_FILE = Path(".strata/admin-token")


class CliError(Exception):
    """A failure to report in one line and exit non-zero."""


def resolve_token(explicit: str | None, environ: dict[str, str] | None = None) -> str:
    env = environ if environ is not None else dict(os.environ)
    if explicit:
        return explicit
    if env.get("STRATA_ADMIN_TOKEN"):
        return env["STRATA_ADMIN_TOKEN"]
    path = Path(env.get("STRATA_ADMIN_TOKEN_FILE", str(DEFAULT_TOKEN_FILE)))
    if path.exists():
        return path.read_text().strip()
    raise CliError(f"no admin token: pass --token, set STRATA_ADMIN_TOKEN, or create {path}")


@dataclass
class ControlClient:
    server: str
    token: str
    timeout_s: float = 10.0

    def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> Any:
        data: bytes | None = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else jsonutil.dumps(body)
        req = Request(self.server.rstrip("/") + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urlopen(req, timeout=self.timeout_s) as resp:
                return jsonutil.loads(resp.read() or b"null")
        except HTTPError as e:
            raise CliError(_error_text(e.code, e.read())) from None
        except (URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise CliError(f"cannot reach control at {self.server}: {reason}") from None


def _error_text(status: int, raw: bytes) -> str:
    try:
        err = jsonutil.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"
    lines = [f"{status}: {err.get('message', '')}"]
    if err.get("current_revision") is not None:
        lines.append(f"  current revision: {err['current_revision']}")
    return "\n".join(lines)
