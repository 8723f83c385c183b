"""Every AppKey of the control REST app."""

from __future__ import annotations

from aiohttp import web

from control.api.metrics import ApiMetrics
from control.distribute import Distributor
from control.service import ResourceService

SERVICE = web.AppKey("service", ResourceService)
DISTRIBUTOR = web.AppKey("distributor", Distributor)
METRICS = web.AppKey("metrics", ApiMetrics)
