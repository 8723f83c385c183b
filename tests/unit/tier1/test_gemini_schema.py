"""JSON Schema → Gemini `Schema` (function parameters) and → `responseJsonSchema`."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types as gt
from hypothesis import given, settings
from hypothesis import strategies as st

from common import jsonutil
from tier1.providers._gemini_schema import parameters_schema, response_json_schema


def _params(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **extra}


@pytest.mark.parametrize(
    ("prop", "want"),
    [
        ({"type": "string", "format": "uri", "minLength": 1}, {"type": "STRING", "minLength": 1}),
        ({"type": "string", "format": "date-time"}, {"type": "STRING", "format": "date-time"}),
        (
            {"type": "integer", "format": "int64", "exclusiveMinimum": 0, "multipleOf": 2},
            {"type": "INTEGER", "format": "int64"},
        ),
        (
            {"type": ["number", "null"], "minimum": 0},
            {"type": "NUMBER", "minimum": 0, "nullable": True},
        ),
        (
            {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "d"},
            {"type": "STRING", "description": "d", "nullable": True},
        ),
        (
            {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        ),
        ({"type": ["string", "integer"]}, {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}),
        ({"const": "fixed"}, {"type": "STRING", "enum": ["fixed"]}),
        ({"type": "integer", "enum": [1, 2]}, {"type": "INTEGER", "description": "One of: 1, 2."}),
        ({"enum": ["a", None]}, {"type": "STRING", "enum": ["a"], "nullable": True}),
        (
            {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "maxItems": 3},
            {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 3},
        ),
        (
            {
                "type": "object",
                "properties": {"x": {"type": "boolean"}},
                "required": ["x", "ghost"],
                "additionalProperties": {"type": "string"},
            },
            {"type": "OBJECT", "properties": {"x": {"type": "BOOLEAN"}}, "required": ["x"]},
        ),
        (
            {
                "allOf": [
                    {"properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "integer"}}},
                ]
            },
            {
                "type": "OBJECT",
                "properties": {"a": {"type": "STRING"}, "b": {"type": "INTEGER"}},
                "required": ["a"],
            },
        ),
        (
            {"$ref": "#/$defs/Color", "description": "paint"},
            {"type": "STRING", "enum": ["red"], "description": "paint"},
        ),
        ({"$ref": "#/definitions/Legacy"}, {"type": "BOOLEAN"}),
        ({"$ref": "https://elsewhere.test/s.json", "type": "string"}, {"type": "STRING"}),
        (
            {"type": "string", "default": "x", "example": "y", "title": "T", "readOnly": True},
            {"type": "STRING", "default": "x", "example": "y", "title": "T"},
        ),
    ],
)
def test_parameter_schema_rewrites(prop: dict[str, Any], want: dict[str, Any]) -> None:
    schema = _params(
        {"p": prop},
        **{
            "$schema": "http://json-schema.org/draft-07/schema#",
            "additionalProperties": False,
            "$defs": {"Color": {"type": "string", "enum": ["red"]}},
            "definitions": {"Legacy": {"type": "boolean"}},
        },
    )
    out = parameters_schema(schema)
    assert out == {"type": "OBJECT", "properties": {"p": want}}
    gt.Schema.model_validate_json(jsonutil.dumps(out))


def test_recursive_refs_are_cut_off() -> None:
    schema = _params(
        {"tree": {"$ref": "#/$defs/Node"}},
        **{
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}
                    },
                }
            }
        },
    )
    out = parameters_schema(schema)
    assert out is not None
    depth, node = 0, out["properties"]["tree"]
    while "properties" in node:
        node = node["properties"]["children"]["items"]
        depth += 1
    assert node == {"type": "OBJECT"} and 2 < depth < 20


@pytest.mark.parametrize(
    "schema", [None, "x", {"type": "object"}, {"type": "object", "properties": {}}]
)
def test_functions_without_arguments_get_no_parameters(schema: Any) -> None:
    assert parameters_schema(schema) is None


_KEYS = st.sampled_from(
    ["type", "properties", "items", "anyOf", "oneOf", "allOf", "$ref", "enum", "const"]
    + ["required", "format", "nullable", "description", "additionalProperties", "x"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # what orjson can parse and write
    | st.sampled_from(["string", "object", "array", "null", "#/$defs/D", "x"])
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400)
@given(st.dictionaries(_KEYS, JSON, max_size=5))
def test_any_input_gives_a_schema_google_accepts(schema: Any) -> None:
    defs = {"$defs": {"D": schema}}
    out = parameters_schema({"type": "object", "properties": {"p": schema}, **defs})
    if out is not None:
        gt.Schema.model_validate_json(jsonutil.dumps(out))
        _only_schema_keys(out)


ALLOWED = {
    # Google's Schema object (https://ai.google.dev/api/caching#Schema)
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
}  # fmt: skip


def _only_schema_keys(node: dict[str, Any]) -> None:
    assert set(node) <= ALLOWED, set(node) - ALLOWED
    for sub in [*node.get("properties", {}).values(), *node.get("anyOf", [])]:
        _only_schema_keys(sub)
    if "items" in node:
        _only_schema_keys(node["items"])


def test_response_json_schema_keeps_only_documented_keywords() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": "Person",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "string", "pattern": "^#"},
                "uniqueItems": True,
            },
            "age": {
                "anyOf": [{"type": "integer", "minimum": 0, "multipleOf": 1}, {"type": "null"}]
            },
            "addr": {"$ref": "#/$defs/Addr", "description": "not allowed beside $ref"},
        },
        "additionalProperties": {"type": "string", "const": "x"},
        "$defs": {
            "Addr": {
                "type": "object",
                "properties": {"zip": {"type": "string"}},
                "propertyOrdering": ["zip"],
            }
        },
    }
    assert response_json_schema(schema) == {
        "type": "object",
        "title": "Person",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}},
            "age": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
            "addr": {"$ref": "#/$defs/Addr"},
        },
        "additionalProperties": {"type": "string"},
        "$defs": {
            "Addr": {
                "type": "object",
                "properties": {"zip": {"type": "string"}},
                "propertyOrdering": ["zip"],
            }
        },
    }


@pytest.mark.parametrize(
    "junk",
    [
        {"type": 5},
        {"type": True},
        {"type": [{}]},
        {"$ref": 5},
        {"$ref": "#/$defs/Missing", "type": "string"},
        {"allOf": 3},
        {"allOf": [{"properties": [1]}, {"required": 3}]},
        {"properties": {"a": {"type": "string"}}, "allOf": [{"required": ["a"]}], "required": 7},
    ],
)
def test_junk_never_crashes(junk: dict[str, Any]) -> None:
    out = parameters_schema(_params({"p": junk}))
    assert out is not None
    gt.Schema.model_validate_json(jsonutil.dumps(out))
