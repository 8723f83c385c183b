"""SigV4 verification: requests signed by botocore pass; every kind of bad one is a 403."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

from bench.fakes.sigv4 import AwsTestCredentials, SigV4Error, verify

CREDS = AwsTestCredentials()
HOST = "127.0.0.1:8300"
PATH = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
BODY = b'{"messages": []}'


def signed(
    *,
    secret: str = CREDS.secret_access_key,
    key_id: str = CREDS.access_key_id,
    region: str = CREDS.region,
    service: str = "bedrock",
    token: str | None = None,
    path: str = PATH,
    body: bytes = BODY,
) -> CIMultiDict[str]:
    request = AWSRequest(
        method="POST",
        url=f"http://{HOST}{path}",
        data=body,
        headers={"Content-Type": "application/json", "Host": HOST},
    )
    SigV4Auth(Credentials(key_id, secret, token), service, region).add_auth(request)
    return CIMultiDict(request.headers.items())


def check(headers: CIMultiDict[str], *, creds: AwsTestCredentials = CREDS, body: bytes = BODY, path: str = PATH, now: datetime | None = None) -> None:  # fmt: skip
    verify(creds, "POST", path, headers, body, now=now)


def refused(headers: CIMultiDict[str], **kw: object) -> SigV4Error:
    with pytest.raises(SigV4Error) as info:
        check(headers, **kw)  # type: ignore[arg-type]
    return info.value


def test_a_botocore_signature_verifies() -> None:
    check(signed())
    with_query = "/model/m/invoke?b=2&a=1"
    check(signed(path=with_query), path=with_query)


def test_a_session_token_must_match() -> None:
    creds = AwsTestCredentials(session_token="tok")
    check(signed(token="tok"), creds=creds)
    assert refused(signed(), creds=creds).error_type == "UnrecognizedClientException"


@pytest.mark.parametrize(
    ("change", "error_type", "message"),
    [
        ({"secret": "wrong"}, "InvalidSignatureException", "The request signature we calculated does not match"),
        ({"key_id": "AKIAOTHER"}, "UnrecognizedClientException", "The security token included in the request is invalid."),
        ({"region": "eu-west-1"}, "InvalidSignatureException", "Credential should be scoped to a valid region"),
        ({"service": "s3"}, "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'"),
    ],
)  # fmt: skip
def test_wrong_credentials(change: dict[str, str], error_type: str, message: str) -> None:
    error = refused(signed(**change))  # type: ignore[arg-type]
    assert error.error_type == error_type and error.message.startswith(message)


def test_a_changed_body_or_path_breaks_the_signature() -> None:
    assert refused(signed(), body=b"{}").error_type == "InvalidSignatureException"
    assert refused(signed(), path="/model/other/converse").error_type == "InvalidSignatureException"


def test_missing_and_malformed_authorization() -> None:
    headers = signed()
    del headers["Authorization"]
    assert refused(headers).error_type == "MissingAuthenticationTokenException"
    headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=x"
    assert refused(headers).error_type == "IncompleteSignatureException"
    headers["Authorization"] = "Basic abc"
    assert refused(headers).error_type == "IncompleteSignatureException"


def test_host_must_be_signed() -> None:
    headers = signed()
    headers["Authorization"] = headers["Authorization"].replace(
        "SignedHeaders=content-type;host;x-amz-date", "SignedHeaders=content-type;x-amz-date"
    )
    assert "'Host' or ':authority' must be a 'SignedHeader'" in refused(headers).message


def test_expired_signature() -> None:
    later = datetime.now(UTC) + timedelta(minutes=6)
    assert refused(signed(), now=later).message.startswith("Signature expired:")
