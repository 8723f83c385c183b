"""Request parsing, key auth and the OpenAI passthrough's rewrites (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import jsonutil
from common.config import hash_api_key, parse_resource
from common.errors import BadRequest, Unauthorized
from tier1.auth.keys import authenticate, presented_key
from tier1.http.parse import forwardable, parse
from tier1.providers import _openai_common as oa
from tier1.providers.base import ParsedRequest


def _req(body: dict[str, Any], endpoint: str = "chat") -> ParsedRequest:
    return parse(endpoint, jsonutil.dumps(body), {})  # type: ignore[arg-type]


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"", None),
        (b"{nope", None),
        (b"[1]", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": [{}], "stream": "yes"}', "stream"),
        (b'{"model": "m", "messages": [{}], "stream_options": 1}', "stream_options"),
        (b'{"model": "m", "messages": [{}], "max_tokens": 0}', "max_tokens"),
        (b'{"model": 5, "messages": [{}]}', "model"),
    ],
)
def test_bad_requests_name_the_field(raw: bytes, param: str | None) -> None:
    with pytest.raises(BadRequest) as e:
        parse("chat", raw, {})
    assert e.value.param == param


def test_embeddings_cannot_stream() -> None:
    with pytest.raises(BadRequest, match="cannot be streamed"):
        _req({"model": "e", "input": "x", "stream": True}, "embeddings")


def test_credentials_and_internal_headers_are_not_forwardable() -> None:
    out = forwardable(
        {
            "Authorization": "Bearer k",
            "api-key": "k",
            "X-Api-Key": "k",
            "Cookie": "c",
            "x-strata-pool": "p",
            "Host": "h",
            "x-trace": "t",
            "OpenAI-Organization": "org",
        }
    )
    assert out == {"x-trace": "t"}


def test_key_lookup() -> None:
    consumer = parse_resource(
        {
            "kind": "Consumer",
            "name": "c",
            "spec": {"keys": [{"id": "k", "hash": hash_api_key("sk-1")}]},
        }
    )
    table = {hash_api_key("sk-1"): consumer}
    for headers in ({"authorization": "Bearer sk-1"}, {"api-key": "sk-1"}, {"x-api-key": "sk-1"}):
        assert authenticate(table, headers) is consumer  # type: ignore[arg-type]
    with pytest.raises(Unauthorized, match="missing"):
        authenticate(table, {})  # type: ignore[arg-type]
    with pytest.raises(Unauthorized, match="invalid"):
        authenticate(table, {"authorization": "Bearer sk-2"})  # type: ignore[arg-type]
    assert presented_key({"authorization": "Basic abc"}) is None


def test_body_untouched_without_rewrites() -> None:
    r = _req(CHAT)
    assert oa.request_body(r, upstream_model="m", force_usage=True) is r.raw  # not streaming
    s = _req({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert oa.request_body(s, upstream_model="m", force_usage=True) is s.raw


def test_forced_usage_is_spliced_in() -> None:
    s = _req({**CHAT, "stream": True})
    out = jsonutil.loads(oa.request_body(s, upstream_model="m", force_usage=True))
    assert out["stream_options"] == {"include_usage": True} and out["messages"] == CHAT["messages"]
    s2 = _req({**CHAT, "stream": True, "stream_options": {"other": 1}})
    assert jsonutil.loads(oa.request_body(s2, upstream_model="m", force_usage=True))[
        "stream_options"
    ] == {"other": 1, "include_usage": True}


def test_model_override_rewrites_body() -> None:
    out = jsonutil.loads(
        oa.request_body(_req({**CHAT, "extra": {"x": 1}}), upstream_model="real", force_usage=False)
    )
    assert out["model"] == "real" and out["extra"] == {"x": 1}


def _chunk(i: int, model: str = "up-model") -> bytes:
    return (
        b"data: "
        + jsonutil.dumps(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": f"t{i}"}}],
            }
        )
        + b"\n\n"
    )


USAGE = b'data: {"id":"c","object":"chat.completion.chunk","model":"up-model","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":4}}}\n\n'
STREAM = _chunk(0) + _chunk(1) + USAGE + b"data: [DONE]\n\n"


def _tap(chunks: list[bytes], **kw: Any) -> tuple[bytes, Any]:
    tap = oa.OpenAIStreamTap(**kw)
    out = b"".join(tap.feed(c) for c in chunks) + tap.close()
    return out, tap.usage


def test_usage_chunk_hidden_from_a_client_that_did_not_ask() -> None:
    out, usage = _tap([STREAM], client_model=None, hide_usage=True)
    assert b'"usage"' not in out and out.endswith(b"data: [DONE]\n\n")
    assert usage.input == 7 and usage.output == 3 and usage.cached_input == 4
    shown, _ = _tap([STREAM], client_model=None, hide_usage=False)
    assert shown == STREAM


def test_stream_renamed_to_client_model() -> None:
    out, _ = _tap([STREAM], client_model="asked", hide_usage=False)
    assert b'"up-model"' not in out and out.count(b'"model":"asked"') == 3


@given(st.lists(st.integers(0, len(STREAM)), max_size=10), st.booleans(), st.booleans())
def test_stream_tap_split_invariance(cuts: list[int], hide: bool, rename: bool) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in zip(points, points[1:], strict=False)]
    kw = {"client_model": "asked" if rename else None, "hide_usage": hide}
    assert _tap(chunks, **kw)[0] == _tap([STREAM], **kw)[0]


def test_upstream_auth_errors_never_reach_the_client() -> None:
    status, body = oa.error(
        401, b'{"error": {"message": "Incorrect API key provided: sk-up****1234"}}'
    )
    assert status == 502 and b"sk-up" not in body
    status, body = oa.error(
        400, b'{"error": {"message": "bad tool schema", "type": "invalid_request_error"}}'
    )
    assert status == 400 and jsonutil.loads(body)["error"]["message"] == "bad tool schema"
    status, body = oa.error(500, b"<html>oops</html>")
    assert status == 500 and jsonutil.loads(body)["error"]["code"] == "upstream_error"
