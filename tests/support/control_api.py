"""A tiny client for control's REST API in tests."""

from __future__ import annotations

from typing import Any

import aiohttp

TOKEN = "st-admin-test-token"


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str = TOKEN) -> None:
        self.session, self.base, self.token = session, base, token

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | str | None = None,
        content_type: str | None = None,
    ) -> tuple[int, Any]:
        headers = (
            {"Authorization": f"Bearer {self.token if token is None else token}"}
            if token != ""
            else {}
        )
        if content_type:
            headers["Content-Type"] = content_type
        kwargs: dict[str, Any] = {"json": body} if body is not None else {"data": raw}
        async with self.session.request(method, self.base + path, headers=headers, **kwargs) as r:
            return r.status, await r.json(content_type=None)
