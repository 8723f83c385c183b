"""JSON Schema, as OpenAI clients write it, → the two schema dialects Gemini accepts.

`parameters_schema` feeds `functionDeclarations[].parameters`, which takes Google's
`Schema` object: "a select subset of an OpenAPI 3.0 schema object"
(https://ai.google.dev/api/caching#Schema, Vertex:
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/Schema). The API answers 400
to keys outside that subset, so everything else is rewritten or dropped:

    rewritten  $ref to #/$defs/… or #/definitions/…   inlined (recursion cut at depth 12)
               allOf                                  merged into one schema
               oneOf                                  → anyOf
               type: [T, "null"], anyOf with null     → type T + nullable: true
               const                                  → enum: [const]
               enum on a non-string type              → dropped, its values appended to
                                                        the description (the API takes
                                                        enum on STRING only)
               type names                             → upper case (STRING, OBJECT, …)
    dropped    $schema $id $comment $defs definitions additionalProperties
               patternProperties unevaluatedProperties propertyNames
               dependentRequired dependentSchemas not if then else exclusiveMinimum
               exclusiveMaximum multipleOf uniqueItems contains prefixItems examples
               readOnly writeOnly deprecated contentEncoding contentMediaType strict,
               and any `format` Gemini does not list for the type (STRING: enum,
               date-time; NUMBER: float, double; INTEGER: int32, int64)

`response_json_schema` feeds `generationConfig.responseJsonSchema`, which takes JSON
Schema itself; the docs list the keys it honours (`RESPONSE_JSON_SCHEMA_KEYS`), and the
rest are dropped so an unsupported keyword never turns into a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common import jsonutil

_TYPES = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
}
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_COPIED: dict[str, type | tuple[type, ...]] = {
    "title": str,
    "description": str,
    "pattern": str,
    "minItems": int,
    "maxItems": int,
    "minLength": int,
    "maxLength": int,
    "minProperties": int,
    "maxProperties": int,
    "minimum": (int, float),
    "maximum": (int, float),
}
_MAX_DEPTH = 12

RESPONSE_JSON_SCHEMA_KEYS = frozenset(
    {
        # https://ai.google.dev/api/generate-content#FIELDS.response_json_schema (and the
        # same list on Vertex's GenerationConfig.responseJsonSchema)
        "$id",
        "$defs",
        "$ref",
        "$anchor",
        "type",
        "format",
        "title",
        "description",
        "enum",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "anyOf",
        "oneOf",
        "properties",
        "additionalProperties",
        "required",
        "propertyOrdering",
    }
)


def parameters_schema(schema: Any) -> dict[str, Any] | None:
    """A function's JSON-Schema parameters → Gemini `Schema`, or None when the function
    takes no arguments (Gemini rejects an OBJECT whose `properties` is empty)."""
    if not isinstance(schema, Mapping):
        return None
    out = _convert(schema, _defs(schema), 0)
    if out.get("type") == "OBJECT" and not out.get("properties"):
        return None
    return out


def _defs(schema: Mapping[str, Any]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        value = schema.get(key)
        if isinstance(value, Mapping):
            defs.update(value)
    return defs


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Inline a local `$ref` (one level; a chained one is resolved by the caller)."""
    if "$ref" not in node:
        return node
    ref = node["$ref"]
    rest = {k: v for k, v in node.items() if k != "$ref"}
    for prefix in ("#/$defs/", "#/definitions/"):
        if isinstance(ref, str) and ref.startswith(prefix):
            target = defs.get(ref[len(prefix) :])
            if isinstance(target, Mapping):
                return {**target, **rest}  # the referring node's description wins
    return rest  # a remote or broken $ref: keep what the node says besides it


def _merge_all_of(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    if "allOf" not in node:
        return node
    subs = node["allOf"]
    merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
    if not isinstance(subs, list):
        return merged
    own_props, own_required = merged.get("properties"), merged.get("required")
    props: dict[str, Any] = dict(own_props) if isinstance(own_props, Mapping) else {}
    required: list[Any] = list(own_required) if isinstance(own_required, list) else []
    for sub in subs:
        if not isinstance(sub, Mapping):
            continue
        sub = _resolve(sub, defs)
        if isinstance(sub.get("properties"), Mapping):
            props.update(sub["properties"])
        if isinstance(sub.get("required"), list):
            required += [r for r in sub["required"] if r not in required]
        for k, v in sub.items():
            if k not in ("properties", "required"):
                merged.setdefault(k, v)
    if props:
        merged["properties"] = props
    if required:
        merged["required"] = required
    return merged


def _enum_value(value: Any) -> str:
    return value if isinstance(value, str) else jsonutil.dumps(value).decode()


def _convert(node: Any, defs: Mapping[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {}
    if depth > _MAX_DEPTH:
        return {"type": "OBJECT"}  # a recursive schema, cut off
    node = _merge_all_of(_resolve(node, defs), defs)
    if "$ref" in node or "allOf" in node:  # a $ref inside allOf, or allOf after a $ref
        return _convert(node, defs, depth + 1)

    raw_type = node.get("type")
    types = [
        t for t in (raw_type if isinstance(raw_type, list) else [raw_type]) if isinstance(t, str)
    ]
    nullable = "null" in types or node.get("nullable") is True
    types = [t for t in types if t != "null"]

    variants = node.get("anyOf", node.get("oneOf"))
    if isinstance(variants, list):
        real = [v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")]
        nullable = nullable or len(real) < len(variants)
        base = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
        if len(real) == 1 and isinstance(real[0], Mapping):
            single = _convert({**_resolve(real[0], defs), **base}, defs, depth + 1)
            if nullable:
                single["nullable"] = True
            return single
        node = {**base, "anyOf": real}

    out: dict[str, Any] = {}
    if len(types) == 1 and types[0] in _TYPES:
        out["type"] = _TYPES[types[0]]
    elif len(types) > 1:
        rest = {k: v for k, v in node.items() if k not in ("type", "anyOf", "oneOf")}
        out["anyOf"] = [_convert({**rest, "type": t}, defs, depth + 1) for t in types]
    if isinstance(node.get("anyOf"), list) and "anyOf" not in out:
        out["anyOf"] = [_convert(v, defs, depth + 1) for v in node["anyOf"]]

    for key, kind in _COPIED.items():
        value = node.get(key)
        if isinstance(value, kind) and not isinstance(value, bool):
            out[key] = value
    for key in ("default", "example"):
        if key in node:
            out[key] = node[key]
    ordering = node.get("propertyOrdering")
    if isinstance(ordering, list) and all(isinstance(p, str) for p in ordering):
        out["propertyOrdering"] = ordering

    enum = node.get("enum")
    if "const" in node:
        enum = [node["const"]]
    if isinstance(enum, list) and enum:
        nullable = nullable or None in enum
        values = [_enum_value(v) for v in enum if v is not None]
        out.setdefault("type", "STRING")
        if out["type"] == "STRING":
            out["enum"] = values
        elif values:  # Gemini takes enum only on STRING: keep the values as a hint
            hint = f"One of: {', '.join(values)}."
            out["description"] = f"{out['description']} {hint}" if "description" in out else hint
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt

    props = node.get("properties")
    if isinstance(props, Mapping):
        out["properties"] = {str(k): _convert(v, defs, depth + 1) for k, v in props.items()}
        required = node.get("required")
        if isinstance(required, list):
            kept = [r for r in required if isinstance(r, str) and r in props]
            if kept:
                out["required"] = kept
        out.setdefault("type", "OBJECT")
    items = node.get("items")
    if isinstance(items, list):
        items = items[0] if items else None
    if isinstance(items, Mapping):
        out["items"] = _convert(items, defs, depth + 1)
        out.setdefault("type", "ARRAY")
    if nullable:
        out["nullable"] = True
    return out


def response_json_schema(schema: Any) -> Any:
    """The client's JSON Schema with only the keywords `responseJsonSchema` honours;
    `definitions` becomes `$defs` (with its `$ref`s) since only `$defs` is listed."""
    return _sanitize(schema)


def _sanitize(node: Any) -> Any:
    if not isinstance(node, Mapping):
        return node
    if isinstance(node.get("$ref"), str):
        # "If $ref is set on a sub-schema, no other properties, except for than those
        # starting as a $, may be set."
        ref = node["$ref"].replace("#/definitions/", "#/$defs/", 1)
        return {
            k: (ref if k == "$ref" else v)
            for k, v in node.items()
            if k.startswith("$") and k in RESPONSE_JSON_SCHEMA_KEYS
        }
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "definitions" and isinstance(value, Mapping):
            defs = out.setdefault("$defs", {})
            defs.update({k: _sanitize(v) for k, v in value.items()})
        elif key not in RESPONSE_JSON_SCHEMA_KEYS:
            continue
        elif key in ("properties", "$defs") and isinstance(value, Mapping):
            target = out.setdefault(key, {})
            target.update({k: _sanitize(v) for k, v in value.items()})
        elif key in ("anyOf", "oneOf", "prefixItems") and isinstance(value, list):
            out[key] = [_sanitize(v) for v in value]
        elif key in ("items", "additionalProperties"):
            out[key] = _sanitize(value)
        else:
            out[key] = value
    return out
