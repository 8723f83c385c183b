"""JWT verification: HS256 with a shared secret, RS256/ES256 from a JWKS file."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from common import jsonutil
from common.errors import Unauthorized
from tier1.auth.jwt import JwtSettings, JwtVerifier, looks_like_jwt

SECRET = "a-shared-secret-of-at-least-32-bytes!!"


def _claims(**extra: object) -> dict[str, object]:
    return {
        "sub": "team-a",
        "iss": "https://idp.example",
        "aud": "strata",
        "exp": int(time.time()) + 60,
        **extra,
    }


async def test_hs256() -> None:
    v = JwtVerifier(
        JwtSettings(
            algorithms=("HS256",),
            hs256_secret=SECRET,
            issuer="https://idp.example",
            audience="strata",
        )
    )
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    assert looks_like_jwt(token)
    assert await v.consumer_name(token, None) == "team-a"
    with pytest.raises(Unauthorized, match="invalid token"):
        await v.consumer_name(
            jwt.encode(_claims(), "another-secret-that-is-long-enough-123", algorithm="HS256"), None
        )
    with pytest.raises(Unauthorized, match="expired"):
        await v.consumer_name(
            jwt.encode(_claims(exp=int(time.time()) - 3600), SECRET, algorithm="HS256"), None
        )
    with pytest.raises(Unauthorized, match="invalid token"):
        await v.consumer_name(
            jwt.encode(_claims(aud="someone-else"), SECRET, algorithm="HS256"), None
        )
    with pytest.raises(Unauthorized, match="no 'sub' claim"):
        await v.consumer_name(
            jwt.encode(
                {k: v for k, v in _claims().items() if k != "sub"}, SECRET, algorithm="HS256"
            ),
            None,
        )


async def test_rs256_and_es256_from_jwks_file(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            {
                **jsonutil.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())),
                "kid": "r1",
                "alg": "RS256",
                "use": "sig",
            },
            {
                **jsonutil.loads(ECAlgorithm.to_jwk(ec_key.public_key())),
                "kid": "e1",
                "alg": "ES256",
                "use": "sig",
            },
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_bytes(jsonutil.dumps(jwks))
    v = JwtVerifier(
        JwtSettings(jwks_file=str(path), issuer="https://idp.example", audience="strata")
    )
    rs = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "r1"})
    es = jwt.encode(_claims(sub="team-b"), ec_key, algorithm="ES256", headers={"kid": "e1"})
    assert await v.consumer_name(rs, None) == "team-a"
    assert await v.consumer_name(es, None) == "team-b"
    with pytest.raises(Unauthorized, match="signing key is unknown"):
        await v.consumer_name(
            jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "zz"}), None
        )
    with pytest.raises(Unauthorized, match="not accepted"):
        await v.consumer_name(jwt.encode(_claims(), SECRET, algorithm="HS256"), None)
