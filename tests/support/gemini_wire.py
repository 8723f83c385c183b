"""Check Gemini wire JSON against Google's own pydantic types (the `google-genai` SDK).

The SDK's models forbid unknown fields and accept the REST API's camelCase names as
aliases, so a body that validates here has only fields Google's schema knows, with the
right shapes. `GenerateContentConfig` is the SDK's flattened view; the REST body splits
it into the top-level keys below, so each is checked against its own type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.genai import types as gt

from common import jsonutil

REQUEST_KEYS = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
)


def assert_gemini_request(body: Mapping[str, Any]) -> None:
    """A generateContent request body that Google's schema accepts."""
    assert set(body) <= REQUEST_KEYS, set(body) - REQUEST_KEYS
    assert body["contents"], "contents must not be empty"
    for content in body["contents"]:
        parsed = gt.Content.model_validate_json(jsonutil.dumps(content))
        assert parsed.role in ("user", "model")
        assert parsed.parts
        for part in parsed.parts:
            assert part.text is None or part.text != "", "the API rejects empty text parts"
    if "systemInstruction" in body:
        gt.Content.model_validate_json(jsonutil.dumps(body["systemInstruction"]))
    for tool in body.get("tools", []):
        gt.Tool.model_validate_json(jsonutil.dumps(tool))
    if "toolConfig" in body:
        gt.ToolConfig.model_validate_json(jsonutil.dumps(body["toolConfig"]))
    if "generationConfig" in body:
        gt.GenerationConfig.model_validate_json(jsonutil.dumps(body["generationConfig"]))


def assert_gemini_response(obj: Mapping[str, Any]) -> None:
    """A recorded/hand-written GenerateContentResponse that Google's schema accepts."""
    gt.GenerateContentResponse.model_validate_json(jsonutil.dumps(obj))
