"""expect-* checks: deep subset match and one readable line per differing field."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from bench.fakes.expect import Observed, check, subset_diff
from bench.fakes.script import Script

BODY = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "hello"}],
    "stream": True,
    "n": 1,
    "meta": {"tier": "gold"},
}


@pytest.mark.parametrize(
    ("expected", "diffs"),
    [
        ({"model": "gpt-4o"}, []),
        ({"messages": [{"content": "hello"}]}, []),
        ({"meta": {}}, []),
        ({"user": None, "meta": {"other": None}}, []),
        ({"model": "gpt-4"}, ["model: expected 'gpt-4', got 'gpt-4o'"]),
        ({"user": "u1"}, ["user: expected 'u1', got absent"]),
        ({"stream": None}, ["stream: expected absent, got True"]),
        ({"stream": 1}, ["stream: expected 1, got True"]),
        ({"n": True}, ["n: expected True, got 1"]),
        (
            {"messages": [{"role": "user", "content": "hi"}]},
            ["messages[0].content: expected 'hi', got 'hello'"],
        ),
        ({"messages": []}, ["messages: expected 0 items, got 1"]),
        ({"meta": "gold"}, ["meta: expected 'gold', got {'tier': 'gold'}"]),
        ({"model": {"id": "x"}}, ["model: expected an object, got 'gpt-4o'"]),
        ({"model": ["x"]}, ["model: expected an array, got 'gpt-4o'"]),
    ],
)
def test_subset_diff(expected: dict[str, Any], diffs: list[str]) -> None:
    assert subset_diff(expected, BODY) == diffs


def _seen(**overrides: Any) -> Observed:
    base: dict[str, Any] = {
        "path": "/v1/chat/completions",
        "query": {"api-version": "2024-10-21"},
        "headers": CIMultiDict({"Authorization": "Bearer sk-up", "X-Trace": "t1"}),
        "body": BODY,
        "model": "gpt-4o",
    }
    base.update(overrides)
    return Observed(**base)


def test_everything_matching_gives_no_diff() -> None:
    script = Script(
        expect_path="/v1/chat/completions",
        expect_query={"api-version": "2024-10-21", "debug": None},
        expect_headers={"authorization": "Bearer sk-up", "x-client-key": None},
        expect_body={"stream": True},
        expect_model="gpt-4o",
    )
    assert check(script, _seen()) == []


def test_each_differing_field_is_named() -> None:
    script = Script(
        expect_path="/v1/completions",
        expect_query={"api-version": "2025-01-01"},
        expect_headers={"authorization": None, "x-trace": "t2", "x-missing": "v"},
        expect_body={"stream": False},
        expect_model="gpt-4",
    )
    assert check(script, _seen()) == [
        "path: expected '/v1/completions', got '/v1/chat/completions'",
        "model: expected 'gpt-4', got 'gpt-4o'",
        "query api-version: expected '2025-01-01', got '2024-10-21'",
        "header authorization: expected absent, got 'Bearer sk-up'",
        "header x-trace: expected 't2', got 't1'",
        "header x-missing: expected 'v', got absent",
        "body stream: expected False, got True",
    ]


def test_body_expectation_without_a_json_body() -> None:
    script = Script(expect_body={"a": 1}, expect_model="m")
    assert check(script, _seen(body=None, model=None)) == [
        "model: expected 'm', got absent",
        "body: expected a JSON object, got no JSON body",
    ]
    assert check(script, _seen(body=[1], model="m")) == ["body: expected a JSON object, got [1]"]
