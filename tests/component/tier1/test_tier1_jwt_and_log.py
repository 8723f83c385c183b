"""JWT consumers through the whole app, and the buffered access log."""

from __future__ import annotations

import io
import time

import jwt
import openai
import pytest
from openai import AsyncOpenAI

from bench.fakes import fake_upstreams
from common import jsonutil
from tests.support.gateway import consumer, openai_backend, route, start_gateway
from tier1.accesslog import BufferedAccessLog
from tier1.auth.jwt import JwtSettings
from tier1.settings import Tier1Settings

SECRET = "a-shared-secret-of-at-least-32-bytes!!"


async def test_jwt_names_the_consumer() -> None:
    async with fake_upstreams(["a"]) as fakes:
        settings = Tier1Settings(
            jwt=JwtSettings(algorithms=("HS256",), hs256_secret=SECRET, audience="strata")
        )
        gw = await start_gateway(
            [
                openai_backend("a", fakes["a"].url + "/v1"),
                route("r", ["m"], ["a"]),
                consumer("team-a", key="sk-strata-other-key-000000000"),
            ],
            settings,
        )
        good = jwt.encode(
            {"sub": "team-a", "aud": "strata", "exp": int(time.time()) + 60},
            SECRET,
            algorithm="HS256",
        )
        unknown = jwt.encode(
            {"sub": "ghost", "aud": "strata", "exp": int(time.time()) + 60},
            SECRET,
            algorithm="HS256",
        )
        try:
            c = AsyncOpenAI(base_url=gw.base_url, api_key=good, max_retries=0)
            r = await c.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
            assert r.choices
            await c.close()
            c = AsyncOpenAI(base_url=gw.base_url, api_key=unknown, max_retries=0)
            with pytest.raises(openai.AuthenticationError, match="not configured"):
                await c.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            await c.close()
            assert all(
                good not in str(v) for req in fakes["a"].requests for v in req.headers.values()
            )
        finally:
            await gw.close()


async def test_buffered_access_log_flushes_in_batches() -> None:
    out = io.BytesIO()
    sink = BufferedAccessLog(out, interval_s=0.05, max_lines=3)
    await sink.start()
    sink.write({"n": 1})
    sink.write({"n": 2})
    assert out.getvalue() == b""  # batched
    sink.write({"n": 3})  # the batch is full: written at once
    assert [jsonutil.loads(x)["n"] for x in out.getvalue().splitlines()] == [1, 2, 3]
    sink.write({"n": 4})
    await sink.close()  # closing writes what is left
    assert out.getvalue().splitlines()[-1] == b'{"n":4}'
