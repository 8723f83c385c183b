"""Scripting headers -> Script: key parsing, shared vs per-instance, the header helper."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.fakes.script import (
    KEYS,
    Script,
    ScriptError,
    check_instance_name,
    script_headers,
    script_pairs,
)


def script_for(name: str, headers: dict[str, str], defaults: Script | None = None) -> Script:
    return (defaults or Script()).merged(script_pairs(name, headers.items()))


def test_no_scripting_headers_keep_the_defaults_object() -> None:
    defaults = Script(status=201)
    assert script_for("a", {"content-type": "application/json"}, defaults) is defaults


def test_instance_header_wins_over_shared_and_others_are_ignored() -> None:
    headers = {"x-fake-status": "500", "X-Fake-A-Status": "503", "x-fake-b-delay-ms": "7"}
    a = script_for("a", headers)
    b = script_for("b", headers)
    c = script_for("c", headers)
    assert (a.status, a.delay_ms) == (503, 0.0)
    assert (b.status, b.delay_ms) == (500, 7.0)
    assert (c.status, c.delay_ms) == (500, 0.0)


def test_echoed_instance_header_is_not_scripting() -> None:
    assert script_for("a", {"x-fake-instance": "b"}) == Script()


@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        ("status", "429", "status", 429),
        ("headers", '{"retry-after": "2"}', "headers", {"retry-after": "2"}),
        ("body", "aGk=", "body", b"hi"),
        ("content-type", "text/plain", "content_type", "text/plain"),
        ("delay-ms", "12.5", "delay_ms", 12.5),
        ("chunks", "0", "chunks", 0),
        ("chunk-delay-ms", "3", "chunk_delay_ms", 3.0),
        ("stall-after", "2", "stall_after", 2),
        ("hang", "1", "hang", True),
        ("hang", "false", "hang", False),
        ("usage", '{"prompt_tokens": 7, "cached_tokens": 3}', "usage", {"prompt_tokens": 7, "cached_tokens": 3}),
        ("response-model", "gpt-x", "response_model", "gpt-x"),
        ("tool-call", "get_weather", "tool_call", "get_weather"),
        ("stream-exception", "throttlingException", "stream_exception", "throttlingException"),
        ("usage", '{"cache_creation_tokens": 4}', "usage", {"cache_creation_tokens": 4}),
        ("expect-path", "/v1/x", "expect_path", "/v1/x"),
        ("expect-query", '{"api-version": "1", "x": null}', "expect_query", {"api-version": "1", "x": None}),
        ("expect-headers", '{"api-key": null}', "expect_headers", {"api-key": None}),
        ("expect-body", '{"model": "m", "n": 2}', "expect_body", {"model": "m", "n": 2}),
        ("expect-model", "m", "expect_model", "m"),
    ],
)  # fmt: skip
def test_each_key_parses(key: str, value: str, field: str, expected: Any) -> None:
    script = script_for("a", {f"x-fake-{key}": value})
    assert getattr(script, field) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("status", "abc"),
        ("status", "99"),
        ("status", "600"),
        ("headers", "[1]"),
        ("headers", '{"a": 1}'),
        ("body", "not base64!"),
        ("delay-ms", "-1"),
        ("delay-ms", "nan"),
        ("chunks", "-2"),
        ("hang", "maybe"),
        ("usage", '{"prompt_tokens": -1}'),
        ("usage", '{"prompt_tokens": true}'),
        ("usage", '{"bogus": 1}'),
        ("expect-headers", '{"a": 1}'),
        ("expect-body", "not json"),
        ("tool-call", "bad name!"),
        ("tool-call", ""),
        ("stream-exception", "a b"),
    ],
)
def test_bad_values_name_the_header(key: str, value: str) -> None:
    with pytest.raises(ScriptError, match=f"x-fake-{key}"):
        script_for("a", {f"x-fake-a-{key}": value})


@pytest.mark.parametrize("header", ["x-fake-stauts", "x-fake-a-stauts", "x-fake-A_b-status"])
def test_unknown_scripting_headers_are_errors(header: str) -> None:
    with pytest.raises(ScriptError, match="unknown scripting header"):
        script_pairs("a", [(header, "1")])


def test_reserved_and_malformed_instance_names() -> None:
    assert check_instance_name("openai1") == "openai1"
    for bad in ("chunk", "expect", "tool", "stream", "A", "a-b", ""):
        with pytest.raises(ValueError):
            check_instance_name(bad)


def test_script_validates_its_fields() -> None:
    with pytest.raises(ScriptError):
        Script(status=42)
    with pytest.raises(ScriptError):
        Script(usage={"bogus": 1})
    assert not Script().has_expectations
    assert Script(expect_model="m").has_expectations


def test_script_headers_encodes_python_values() -> None:
    headers = script_headers(
        "a", status=503, headers={"retry-after": "2"}, body=b"hi", hang=True, delay_ms=5
    )
    assert headers == {
        "x-fake-a-status": "503",
        "x-fake-a-headers": '{"retry-after":"2"}',
        "x-fake-a-body": "aGk=",
        "x-fake-a-hang": "1",
        "x-fake-a-delay-ms": "5",
    }
    assert script_headers(chunks=2) == {"x-fake-chunks": "2"}
    with pytest.raises(ValueError):
        script_headers(stauts=1)


_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "status": st.integers(100, 599),
    "headers": st.dictionaries(st.from_regex(r"x-[a-z]{1,8}", fullmatch=True), st.text("ab12 ")),
    "body": st.binary(max_size=64),
    "delay_ms": st.integers(0, 10_000),
    "chunks": st.integers(0, 100),
    "stall_after": st.integers(0, 100),
    "hang": st.booleans(),
    "usage": st.dictionaries(st.sampled_from(["prompt_tokens", "cached_tokens"]), st.integers(0, 10**6)),
    "expect_body": st.dictionaries(st.text("abc", min_size=1), st.none() | st.integers(-(2**53), 2**53) | st.text()),
    "expect_model": st.text("abc-./", min_size=1),
    "tool_call": st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True),
    "stream_exception": st.sampled_from(["throttlingException", "overloaded_error", "UNAVAILABLE"]),
}  # fmt: skip


@given(st.fixed_dictionaries({}, optional=_VALUES), st.booleans())
def test_script_headers_round_trip(values: dict[str, Any], per_instance: bool) -> None:
    headers = script_headers("a", **values) if per_instance else script_headers(**values)
    script = script_for("a", headers)
    for field, value in values.items():
        assert getattr(script, field) == value
    assert {k.removeprefix("x-fake-").removeprefix("a-") for k in headers} <= KEYS
