"""Every AppKey of the tier1 app."""

from __future__ import annotations

from aiohttp import web

from tier1.proxy import Proxy
from tier1.settings import Tier1Settings

PROXY = web.AppKey("proxy", Proxy)
SETTINGS = web.AppKey("settings", Tier1Settings)
