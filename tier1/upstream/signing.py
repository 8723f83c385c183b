"""Upstream authentication applied after translation, over the final request.

Static API keys are plain headers, set when the runtime is compiled. The signers here
need fresh material per request:
- AWS SigV4 (Bedrock): botocore's signer over method, URL, headers and the exact body;
  credentials from the backend's config or the AWS default chain (env, profile, instance
  or pod identity), resolved once in a thread and refreshed by botocore when temporary.
- Google OAuth (Vertex): a service-account key or application default credentials via
  google-auth, refreshed in a thread five minutes before expiry.
- Microsoft Entra ID (Azure OpenAI): see credentials.EntraToken.
Signers are cached by the proxy across config swaps, keyed by their settings.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from common import jsonutil
from common.config.backend import AwsAuth, AzureEntraAuth, GcpAuth
from common.errors import UpstreamError
from tier1.upstream.credentials import EntraToken

GCP_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
REFRESH_MARGIN_S = 300.0


class Signer(Protocol):
    async def sign(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        session: aiohttp.ClientSession,
    ) -> None:
        """Add authentication to `headers` in place; raises UpstreamError if it cannot."""
        ...


def sigv4_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    creds: Credentials,
    region: str,
    service: str = "bedrock",
) -> dict[str, str]:
    """The signed headers (pure apart from reading the clock, as SigV4 requires)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(creds, service, region).add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


class AwsSigner:
    def __init__(self, auth: AwsAuth, region: str) -> None:
        self.auth = auth
        self.region = region
        self._creds: Any = None
        self._lock = asyncio.Lock()

    async def _credentials(self) -> Credentials:
        a = self.auth
        if a.access_key_id is not None and a.secret_access_key is not None:
            token = a.session_token.get_secret_value() if a.session_token else None
            return Credentials(
                a.access_key_id.get_secret_value(), a.secret_access_key.get_secret_value(), token
            )
        async with self._lock:
            if self._creds is None:
                self._creds = await asyncio.to_thread(_default_chain)
        if self._creds is None:
            raise UpstreamError(
                "no AWS credentials: configure keys or the default chain", retryable=True
            )
        # refreshable credentials may reach out to STS/IMDS: keep that off the event loop
        frozen = await asyncio.to_thread(self._creds.get_frozen_credentials)
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    async def sign(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        session: aiohttp.ClientSession,
    ) -> None:
        creds = await self._credentials()
        headers.update(sigv4_headers(method, url, headers, body, creds, self.region))


def _default_chain() -> Any:
    import botocore.session

    return botocore.session.get_session().get_credentials()


class GcpSigner:
    def __init__(self, auth: GcpAuth) -> None:
        self.auth = auth
        self._creds: Any = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def _load(self) -> Any:
        if self.auth.service_account_json is not None:
            from google.oauth2 import service_account

            info = jsonutil.loads(self.auth.service_account_json.get_secret_value())
            return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=list(GCP_SCOPES)
            )
        import google.auth

        creds, _ = google.auth.default(scopes=list(GCP_SCOPES))
        return creds

    def _refresh(self) -> tuple[str, float]:
        import google.auth.transport.requests

        if self._creds is None:
            self._creds = self._load()
        self._creds.refresh(google.auth.transport.requests.Request())
        expiry = self._creds.expiry
        ttl = (expiry.timestamp() - time.time()) if expiry is not None else 3600.0
        return str(self._creds.token), time.monotonic() + ttl

    async def token(self) -> str:
        if self._creds is not None and time.monotonic() < self._expires_at - REFRESH_MARGIN_S:
            return str(self._creds.token)
        async with self._lock:
            if self._creds is None or time.monotonic() >= self._expires_at - REFRESH_MARGIN_S:
                try:
                    token, self._expires_at = await asyncio.to_thread(self._refresh)
                except Exception as e:  # google-auth raises its own tree; never echo it
                    raise UpstreamError(
                        f"Google token refresh failed: {type(e).__name__}", retryable=True
                    ) from None
                return token
        return str(self._creds.token)

    async def sign(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        session: aiohttp.ClientSession,
    ) -> None:
        headers["authorization"] = "Bearer " + await self.token()


class EntraSigner:
    def __init__(self, auth: AzureEntraAuth) -> None:
        self.token = EntraToken(auth)

    async def sign(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        session: aiohttp.ClientSession,
    ) -> None:
        headers["authorization"] = "Bearer " + await self.token.bearer(session)


def make_signer(spec: Any) -> Signer:
    """A signer for a runtime.SigningSpec (kind aws | gcp | entra)."""
    if spec.kind == "aws":
        return AwsSigner(spec.auth, spec.region)
    if spec.kind == "gcp":
        return GcpSigner(spec.auth)
    return EntraSigner(spec.auth)
