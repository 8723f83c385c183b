"""AWS Signature Version 4 checks for the Bedrock fake, recomputed with botocore (pure).

:func:`verify` takes what arrived (method, the raw path with its query, headers, body)
and the fake's :class:`AwsTestCredentials`, rebuilds the request botocore would have
signed from the headers named in ``SignedHeaders`` only, and compares
``SigV4Auth(creds, "bedrock", region).signature(...)`` with the ``Signature`` given.
A refusal is a :class:`SigV4Error` carrying the error type AWS answers with
(``x-amzn-errortype``) and its message; every one is an HTTP 403.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

__all__ = ["SERVICE", "AwsTestCredentials", "SigV4Error", "verify"]

SERVICE: Final = "bedrock"
_ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_SKEW = timedelta(minutes=5)
_UNSIGNED = "UNSIGNED-PAYLOAD"
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service "
    "documentation for details."
)
_BAD_TOKEN = "The security token included in the request is invalid."


@dataclass(frozen=True, slots=True)
class AwsTestCredentials:
    """The only AWS identity a Bedrock fake accepts (never real credentials)."""

    access_key_id: str = "AKIAFAKEFAKEFAKE0001"
    secret_access_key: str = "fake/secret/key/for/tests/only/0000000000"
    region: str = "us-east-1"
    session_token: str | None = None
    """When set, requests must carry it as ``X-Amz-Security-Token`` (and sign it)."""


class SigV4Error(Exception):
    """A request AWS refuses before looking at it: 403 with ``x-amzn-errortype``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class _Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def _parse(value: str) -> _Authorization:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != _ALGORITHM:
        raise SigV4Error(
            "IncompleteSignatureException",
            f"Unsupported authorization type: {algorithm or value!r}; expected {_ALGORITHM}.",
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            fields[key] = val
    for need in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(need):
            raise SigV4Error(
                "IncompleteSignatureException",
                f"Authorization header requires '{need}' parameter. Authorization={value.strip()}",
            )
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise SigV4Error(
            "IncompleteSignatureException",
            f"Credential should have five slash-separated parts, got {fields['Credential']!r}.",
        )
    key_id, date, region, service, terminator = scope
    return _Authorization(
        key_id,
        date,
        region,
        service,
        terminator,
        signed_headers=tuple(fields["SignedHeaders"].split(";")),
        signature=fields["Signature"],
    )


def verify(
    creds: AwsTestCredentials,
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime | None = None,
) -> None:
    """Raise :class:`SigV4Error` unless the request is signed by ``creds`` for bedrock.

    ``raw_path`` is the request target exactly as received (still percent-encoded, with
    its query); ``headers`` must look names up case-insensitively and keep repeats
    (``getall``), like aiohttp's.
    """
    value = headers.get("Authorization")
    if not value:
        raise SigV4Error("MissingAuthenticationTokenException", "Missing Authentication Token")
    auth = _parse(value)
    if auth.access_key_id != creds.access_key_id:
        raise SigV4Error("UnrecognizedClientException", _BAD_TOKEN)
    if creds.session_token is not None:
        if headers.get("X-Amz-Security-Token") != creds.session_token:
            raise SigV4Error("UnrecognizedClientException", _BAD_TOKEN)
    amz_date = headers.get("X-Amz-Date", "")
    try:
        when = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise SigV4Error(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ) from None
    _check_scope(creds, auth, amz_date)
    signed = set(auth.signed_headers)
    if "host" not in signed:
        raise SigV4Error(
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    if "x-amz-date" not in signed:
        raise SigV4Error(
            "InvalidSignatureException",
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
        )
    current = now or datetime.now(UTC)
    if abs(current - when) > _SKEW:
        stamp = current.strftime(_AMZ_DATE)
        raise SigV4Error(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{(current - _SKEW).strftime(_AMZ_DATE)} ({stamp} - 5 min.)",
        )
    content_sha = headers.get("X-Amz-Content-SHA256")
    if content_sha is not None and content_sha != _UNSIGNED:
        if content_sha != hashlib.sha256(body).hexdigest():
            raise SigV4Error(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
    expected = _signature(creds, method, raw_path, headers, body, auth, amz_date)
    if not hmac.compare_digest(expected, auth.signature):
        raise SigV4Error("InvalidSignatureException", _MISMATCH)


def _check_scope(creds: AwsTestCredentials, auth: _Authorization, amz_date: str) -> None:
    if auth.date != amz_date[:8]:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    if auth.region != creds.region:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{auth.region}'. ",
        )
    if auth.service != SERVICE:
        raise SigV4Error(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SERVICE}'. ",
        )
    if auth.terminator != "aws4_request":
        raise SigV4Error(
            "InvalidSignatureException",
            f"Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{auth.terminator}'. ",
        )


def _signature(
    creds: AwsTestCredentials,
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    auth: _Authorization,
    amz_date: str,
) -> str:
    """The signature botocore computes over the headers the client said it signed."""
    signed = HTTPHeaders()
    getall = getattr(headers, "getall", None)
    for name in auth.signed_headers:
        values = getall(name, []) if getall is not None else [headers.get(name)]
        for value in values:
            if value is not None:
                signed.add_header(name, value)
    host = headers.get("Host", "")
    request = AWSRequest(method=method, url=f"http://{host}{raw_path}", headers=signed, data=body)
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(
        Credentials(creds.access_key_id, creds.secret_access_key, creds.session_token),
        SERVICE,
        creds.region,
    )
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))
