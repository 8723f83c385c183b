"""Upstream credentials that must be fetched and refreshed (I/O lives here only).

EntraToken: OAuth 2.0 client-credentials flow against Microsoft Entra ID
(POST {authority}/{tenant}/oauth2/v2.0/token), cached until five minutes before expiry,
one refresh in flight at a time. The secret is sent to the token endpoint only.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from common import jsonutil
from common.config.backend import AzureEntraAuth
from common.errors import UpstreamError

REFRESH_MARGIN_S = 300.0


class EntraToken:
    def __init__(self, auth: AzureEntraAuth) -> None:
        self.auth = auth
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def cache_key(self) -> tuple[str, str, str, str]:
        a = self.auth
        return (a.authority, a.tenant_id, a.client_id, a.scope)

    async def bearer(self, session: aiohttp.ClientSession) -> str:
        if time.monotonic() < self._expires_at - REFRESH_MARGIN_S:
            return self._token
        async with self._lock:
            if time.monotonic() >= self._expires_at - REFRESH_MARGIN_S:
                await self._fetch(session)
        return self._token

    async def _fetch(self, session: aiohttp.ClientSession) -> None:
        a = self.auth
        url = f"{a.authority}/{a.tenant_id}/oauth2/v2.0/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": a.client_id,
            "client_secret": a.client_secret.get_secret_value(),
            "scope": a.scope,
        }
        try:
            async with session.post(url, data=form, timeout=aiohttp.ClientTimeout(total=10)) as r:
                body = await r.read()
                if r.status != 200:
                    raise UpstreamError(
                        f"Entra token request failed with HTTP {r.status}", retryable=True
                    )
                data = jsonutil.loads(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise UpstreamError(
                f"Entra token request failed: {type(e).__name__}", retryable=True
            ) from None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str):
            raise UpstreamError("Entra token answer has no access_token", retryable=True)
        self._token = token
        self._expires_at = time.monotonic() + float(data.get("expires_in", 3600))
