"""Region names in provider hosts (pure)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_REGION_IN_HOST = re.compile(r"\.([a-z]{2}(?:-gov)?-[a-z]+-\d)\.amazonaws\.com")


def region_from_url(url: str) -> str | None:
    m = _REGION_IN_HOST.search(urlsplit(url).netloc)
    return m.group(1) if m else None
