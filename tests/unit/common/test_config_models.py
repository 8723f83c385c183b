"""The configuration contract: parsing, field-path errors, secrets, cross references."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import jsonutil
from common.config import (
    ConfigSet,
    dump_documents,
    hash_api_key,
    kind_from_word,
    new_api_key,
    parse_documents,
    parse_resource,
    parse_token_cost,
    parse_window,
    to_public,
    to_stored,
    validate_config,
)
from common.errors import ValidationFailed


def backend(name: str = "openai", **spec: Any) -> dict[str, Any]:
    base = {
        "schema": "openai",
        "base_url": "https://api.openai.com/v1",
        "auth": {"type": "api_key", "key": "sk-live-123"},
    }
    return {"kind": "Backend", "name": name, "spec": {**base, **spec}}


def route(name: str, models: list[str], backends: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Route",
        "name": name,
        "spec": {"match": {"models": models}, "backends": [{"name": b} for b in backends], **spec},
    }


def pool(name: str = "local") -> dict[str, Any]:
    return {
        "kind": "Pool",
        "name": name,
        "spec": {
            "model": "m",
            "endpoints": {"type": "static", "addresses": ["10.0.0.1:8000"]},
            "tier2": ["t2:8180"],
        },
    }


def paths(err: ValidationFailed) -> list[str]:
    return [e.path for e in err.errors]


def test_backend_defaults_and_secret_masking() -> None:
    b = parse_resource(backend())
    public = to_public(b)
    assert public["spec"]["auth"]["key"] == {"set": True}
    assert "sk-live-123" not in jsonutil.dumps_str(public)
    assert "sk-live-123" not in repr(b) and "sk-live-123" not in str(b)
    assert to_stored(b)["spec"]["auth"]["key"] == "sk-live-123"
    assert public["spec"]["timeouts"] == {
        "connect_s": 5.0,
        "request_s": 600.0,
        "stream_idle_s": 60.0,
    }


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ({"base_url": None}, "spec", "needs base_url"),
        ({"base_url": "ftp://x"}, "spec.base_url", "http(s) URL"),
        (
            {"schema": "azure_openai", "auth": {"type": "azure_api_key", "key": "k"}},
            "spec",
            "api_version",
        ),
        ({"auth": {"type": "aws"}}, "spec", "does not fit schema"),
        ({"schema": "pool", "base_url": None, "auth": {"type": "none"}}, "spec", "needs `pool`"),
        (
            {"schema": "vertex", "auth": {"type": "gcp"}, "base_url": None},
            "spec",
            "project and region",
        ),
        ({"timeouts": {"connect_s": 0}}, "spec.timeouts.connect_s", "greater than 0"),
        ({"surprise": 1}, "spec.surprise", "Extra inputs"),
    ],
)
def test_backend_errors_name_the_field(spec: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as e:
        parse_resource(backend(**spec))
    assert path in paths(e.value)
    assert fragment in str(e.value)


def test_aws_keys_come_in_pairs() -> None:
    with pytest.raises(ValidationFailed, match="both access_key_id and secret_access_key"):
        parse_resource(
            backend(
                schema="bedrock",
                region="us-east-1",
                base_url=None,
                auth={"type": "aws", "access_key_id": "AKIA"},
            )
        )
    ok = parse_resource(
        backend(schema="bedrock", region="us-east-1", base_url=None, auth={"type": "aws"})
    )
    assert ok.kind == "Backend"


def test_names_are_checked() -> None:
    with pytest.raises(ValidationFailed) as e:
        parse_resource({**backend(), "name": "Bad Name!"})
    assert paths(e.value) == ["name"]


def test_unknown_kind() -> None:
    with pytest.raises(ValidationFailed, match="must be one of"):
        parse_resource({"kind": "Gateway", "name": "x", "spec": {}})


def test_route_rules() -> None:
    with pytest.raises(ValidationFailed, match="at least one backend needs a weight"):
        parse_resource(
            route("r", ["m"], [])
            | {"spec": {"match": {"models": ["m"]}, "backends": [{"name": "a", "weight": 0}]}}
        )
    with pytest.raises(ValidationFailed, match="only once"):
        parse_resource(route("r", ["m"], ["a", "a"]))
    with pytest.raises(ValidationFailed, match="not an HTTP error status"):
        parse_resource(route("r", ["m"], ["a"], retry={"on": [200]}))
    r = parse_resource(route("r", ["m"], ["a"], retry={"on": ["5xx", 408]}))
    assert r.spec.retry.on == ["5xx", 408]  # type: ignore[union-attr]


def test_multi_document_errors_name_the_document() -> None:
    text = (
        dump_documents([parse_resource(pool())])
        + "---\nkind: Route\nname: r\nspec: {match: {models: []}, backends: []}\n"
    )
    with pytest.raises(ValidationFailed) as e:
        parse_documents(text, source="f.yaml")
    assert all(p.startswith("f.yaml[1](Route/r).spec") for p in paths(e.value))


def test_dump_and_parse_round_trip_keeps_public_view() -> None:
    resources = [parse_resource(pool()), parse_resource(backend())]
    text = dump_documents(resources)
    assert "sk-live-123" not in text
    with pytest.raises(ValidationFailed):  # the masked secret cannot be parsed as a value
        parse_documents(text)


def test_cross_references() -> None:
    cfg = ConfigSet.of(
        [
            parse_resource(
                route("r1", ["gpt-4o", "gpt-*"], ["missing"], rate_limit_policies=["nope"])
            ),
            parse_resource(route("r2", ["gpt-4o"], ["openai"])),
            parse_resource(backend()),
            parse_resource(
                backend("pooled", schema="pool", pool="ghost", base_url=None, auth={"type": "none"})
            ),
        ]
    )
    with pytest.raises(ValidationFailed) as e:
        validate_config(cfg)
    got = paths(e.value)
    assert "routes/r1.spec.backends.0.name" in got
    assert "routes/r1.spec.rate_limit_policies.0" in got
    assert "backends/pooled.spec.pool" in got
    assert "routes/r2.spec.match.models" in got  # gpt-4o claimed twice; globs may overlap


def test_same_model_on_different_hosts_is_fine() -> None:
    cfg = ConfigSet.of(
        [
            parse_resource(backend()),
            parse_resource(route("a", ["m"], ["openai"])),
            parse_resource(
                {
                    **route("b", ["m"], ["openai"]),
                    "spec": {
                        "match": {"models": ["m"], "hostnames": ["x.example"]},
                        "backends": [{"name": "openai"}],
                    },
                }
            ),
        ]
    )
    validate_config(cfg)


def test_keys_hash_only_and_unique_across_consumers() -> None:
    key = new_api_key()
    h = hash_api_key(key)
    assert key.startswith("sk-strata-") and h.startswith("sha256:") and key not in h
    c = {"kind": "Consumer", "name": "a", "spec": {"keys": [{"id": "k1", "hash": h}]}}
    cfg = ConfigSet.of([parse_resource(c), parse_resource({**c, "name": "b"})])
    with pytest.raises(ValidationFailed, match="already held by consumer"):
        validate_config(cfg)
    with pytest.raises(ValidationFailed, match="64 lower-case hex"):
        parse_resource(
            {"kind": "Consumer", "name": "a", "spec": {"keys": [{"id": "k", "hash": key}]}}
        )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1), ("90s", 90), ("1m", 60), ("24h", 86400), ("31d", 31 * 86400), ("month", "month")],
)
def test_windows(text: str, seconds: object) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["0s", "32d", "1w", "", "5 m", "-1s"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(ValueError):
        parse_window(text)


@pytest.mark.parametrize(
    ("expr", "weights"),
    [
        ("total", {"total": 1}),
        ("input + 4*output", {"input": 1, "output": 4}),
        ("0.5*cached_input + input", {"cached_input": 0.5, "input": 1}),
        ("output*2 + output", {"output": 3}),
    ],
)
def test_token_cost(expr: str, weights: dict[str, float]) -> None:
    assert parse_token_cost(expr) == weights


@pytest.mark.parametrize("expr", ["", "input - output", "4*5*input", "tokens", "input +"])
def test_bad_token_cost(expr: str) -> None:
    with pytest.raises(ValueError, match="token cost"):
        parse_token_cost(expr)


def test_policy_descriptor_and_zone() -> None:
    base: dict[str, Any] = {
        "kind": "RateLimitPolicy",
        "name": "p",
        "spec": {"limits": [{"window": "1m", "requests": 10}]},
    }
    parse_resource(
        {
            **base,
            "spec": {
                **base["spec"],
                "descriptor": ["consumer", "header:x-team", "metadata:tenant"],
            },
        }
    )
    with pytest.raises(ValidationFailed, match="descriptor part"):
        parse_resource({**base, "spec": {**base["spec"], "descriptor": ["user"]}})
    with pytest.raises(ValidationFailed, match="unknown time zone"):
        parse_resource({**base, "spec": {**base["spec"], "timezone": "Mars/Olympus"}})
    with pytest.raises(ValidationFailed, match="needs `requests`, `tokens`"):
        parse_resource({**base, "spec": {"limits": [{"window": "1m"}]}})


def test_kind_words() -> None:
    assert kind_from_word("routes") == "Route"
    assert kind_from_word("RateLimitPolicy") == "RateLimitPolicy"
    with pytest.raises(ValueError, match="unknown kind"):
        kind_from_word("gateways")


@given(
    st.lists(
        st.sampled_from(["input", "output", "total", "cached_input", "reasoning"]),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.integers(1, 9), min_size=5, max_size=5),
)
def test_token_cost_sums_coefficients(terms: list[str], coefs: list[int]) -> None:
    expr = " + ".join(f"{c}*{t}" for t, c in zip(terms, coefs, strict=False))
    weights = parse_token_cost(expr)
    assert sum(weights.values()) == sum(coefs[: len(terms)])
