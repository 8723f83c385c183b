"""Optional JWT authentication: a verified claim names the consumer.

`JwtVerifier.verify` is pure given a key set; `JwksSource` loads the key set from a
file (re-read when it changes) or a URL (cached, refreshed on a timer and when a token
names an unknown key id, at most once per `min_refresh_s`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from jwt import PyJWK, PyJWKSet

from common import jsonutil
from common.errors import Unauthorized

log = logging.getLogger(__name__)

FILE_CHECK_S = 5.0
"""How often a JWKS file is checked for changes."""


@dataclass(frozen=True, slots=True)
class JwtSettings:
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    issuer: str | None = None
    audience: str | None = None
    consumer_claim: str = "sub"
    """The claim whose value is the Consumer's name."""
    jwks_file: str | None = None
    jwks_url: str | None = None
    hs256_secret: str | None = None
    refresh_s: float = 300.0
    min_refresh_s: float = 10.0
    leeway_s: float = 30.0


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class JwksSource:
    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._keys: dict[str, PyJWK] = {}
        self._all: list[PyJWK] = []
        self._loaded_at = 0.0
        self._file_mtime = 0.0
        self._lock = asyncio.Lock()

    def _set(self, data: Any) -> None:
        keyset = PyJWKSet.from_dict(data)
        self._all = list(keyset.keys)
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._loaded_at = time.monotonic()

    def _read_if_changed(self, path: str) -> Any | None:
        mtime = os.stat(path).st_mtime
        if mtime == self._file_mtime:
            return None
        with open(path, "rb") as f:
            data = jsonutil.loads(f.read())
        self._file_mtime = mtime
        return data

    async def key_for(self, kid: str | None, session: aiohttp.ClientSession | None) -> PyJWK:
        await self._refresh(session, force=kid is not None and kid not in self._keys)
        if kid is not None and kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._all) == 1:
            return self._all[0]
        raise Unauthorized("the token's signing key is unknown")

    async def _refresh(self, session: aiohttp.ClientSession | None, *, force: bool) -> None:
        s = self.settings
        age = time.monotonic() - self._loaded_at
        if s.jwks_file:
            if not self._all or age >= FILE_CHECK_S or force:
                data = await asyncio.to_thread(self._read_if_changed, s.jwks_file)
                if data is not None:
                    self._set(data)
                self._loaded_at = time.monotonic()
            return
        if not s.jwks_url or session is None:
            return
        if self._all and age < s.refresh_s and not (force and age >= s.min_refresh_s):
            return
        async with self._lock:
            if self._all and time.monotonic() - self._loaded_at < s.min_refresh_s:
                return
            try:
                async with session.get(s.jwks_url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                    r.raise_for_status()
                    self._set(jsonutil.loads(await r.read()))
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                log.warning("cannot refresh JWKS from %s: %s", s.jwks_url, type(e).__name__)
                if not self._all:
                    raise Unauthorized("token keys are not available; retry shortly") from None


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self.jwks = JwksSource(settings) if (settings.jwks_file or settings.jwks_url) else None

    async def consumer_name(self, token: str, session: aiohttp.ClientSession | None) -> str:
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed bearer token") from None
        alg = header.get("alg")
        if alg not in s.algorithms:
            raise Unauthorized(f"token algorithm {alg!r} is not accepted")
        key: Any
        if alg == "HS256":
            if not s.hs256_secret:
                raise Unauthorized("HS256 tokens are not accepted here")
            key = s.hs256_secret
        elif self.jwks is not None:
            key = (await self.jwks.key_for(header.get("kid"), session)).key
        else:
            raise Unauthorized("no keys configured for this token type")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=list(s.algorithms),
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_s,
                options={"require": ["exp"], "verify_aud": s.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.PyJWTError as e:
            raise Unauthorized(f"invalid token: {type(e).__name__}") from None
        name = claims.get(s.consumer_claim)
        if not isinstance(name, str) or not name:
            raise Unauthorized(f"the token has no {s.consumer_claim!r} claim naming a consumer")
        return name
