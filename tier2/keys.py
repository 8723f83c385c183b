"""Every AppKey of the tier2 app."""

from __future__ import annotations

from aiohttp import web

from tier2.metrics import Tier2Metrics
from tier2.proxy import Proxy
from tier2.settings import Tier2Settings

PROXY = web.AppKey("proxy", Proxy)
METRICS = web.AppKey("metrics", Tier2Metrics)
SETTINGS = web.AppKey("settings", Tier2Settings)
