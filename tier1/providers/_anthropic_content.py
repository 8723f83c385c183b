"""OpenAI chat messages, content parts and tools → Anthropic Messages blocks (pure).

Anthropic's rules handled here (https://docs.anthropic.com/en/api/messages): system text
goes to the top-level `system`; roles alternate, so tool results become user turns and
consecutive same-role turns merge; tool_result blocks open their user turn; empty text
blocks and empty turns are rejected upstream, so they are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from common import jsonutil
from common.errors import BadRequest


def convert_messages(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (system text blocks, Messages turns). Roles alternate: tool
    results become user turns and consecutive same-role turns are merged."""
    if not isinstance(raw, list):
        raise BadRequest("`messages` must be an array", param="messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping):
            raise BadRequest("each message must be an object", param=where)
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(m.get("content"), where))
            continue
        if role == "user":
            blocks = _user_blocks(m.get("content"), where)
        elif role == "assistant":
            blocks = _assistant_blocks(m, where)
        elif role == "tool":
            role, blocks = "user", [_tool_result(m, where)]
        else:
            raise BadRequest(
                f"message role {role!r} cannot be sent to Anthropic backends", param=f"{where}.role"
            )
        if not blocks:
            continue  # Anthropic rejects empty turns
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":  # tool results must open the user turn
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
        if plain_text(turn["content"]):
            turn["content"] = turn["content"][0]["text"]
    return system, turns


def plain_text(blocks: Sequence[Mapping[str, Any]]) -> bool:
    return len(blocks) == 1 and blocks[0].keys() == {"type", "text"}


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(_parts(content, where)):
        if part.get("type") != "text":
            raise BadRequest("only text parts are allowed here", param=f"{where}.content[{j}]")
        blocks.extend(_text_part(part))
    return blocks


def _parts(content: Any, where: str) -> list[Mapping[str, Any]]:
    if content is None:
        return []
    if not isinstance(content, list) or not all(isinstance(p, Mapping) for p in content):
        raise BadRequest("`content` must be a string or an array of parts", param=where)
    return content


def _text_part(part: Mapping[str, Any]) -> list[dict[str, Any]]:
    text = part.get("text")
    if not isinstance(text, str) or not text:
        return []  # Anthropic rejects empty text blocks
    block: dict[str, Any] = {"type": "text", "text": text}
    if isinstance(part.get("cache_control"), Mapping):
        block["cache_control"] = dict(part["cache_control"])
    return [block]


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(_parts(content, where)):
        kind = part.get("type")
        if kind == "text":
            blocks.extend(_text_part(part))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            blocks.append(image_block(url, f"{where}.content[{j}].image_url"))
        elif kind == "file":
            blocks.append(_document_block(part.get("file"), f"{where}.content[{j}].file"))
        else:
            raise BadRequest(
                f"content part type {kind!r} cannot be sent to Anthropic backends",
                param=f"{where}.content[{j}]",
            )
    return blocks


def _split_data_url(url: str, where: str) -> tuple[str, str]:
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        raise BadRequest("data URLs must be base64: data:<media type>;base64,<data>", param=where)
    return header.split(";", 1)[0], data


def image_block(url: Any, where: str) -> dict[str, Any]:
    """An OpenAI image URL → an image block (data: URL → base64 source, http(s) → url)."""
    if not isinstance(url, str):
        raise BadRequest("`image_url.url` must be a string", param=where)
    if url.startswith("data:"):
        media_type, data = _split_data_url(url, where)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise BadRequest("images must be an http(s) URL or a base64 data URL", param=where)


def _document_block(file: Any, where: str) -> dict[str, Any]:
    data_url = file.get("file_data") if isinstance(file, Mapping) else None
    if not isinstance(data_url, str) or not data_url.startswith("data:"):
        raise BadRequest("Anthropic backends take files only as base64 `file_data`", param=where)
    media_type, data = _split_data_url(data_url, where)
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def _assistant_blocks(m: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    content = m.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        blocks = [{"type": "text", "text": content}] if content else []
    else:
        for j, part in enumerate(_parts(content, where)):
            if part.get("type") == "text":
                blocks.extend(_text_part(part))
            elif part.get("type") == "refusal" and part.get("refusal"):
                blocks.append({"type": "text", "text": part["refusal"]})
            else:
                raise BadRequest(
                    "assistant content parts must be text or refusal", param=f"{where}.content[{j}]"
                )
    calls = m.get("tool_calls") or []
    if not isinstance(calls, list):
        raise BadRequest("`tool_calls` must be an array", param=f"{where}.tool_calls")
    for k, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{k}]"))
    return blocks


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise BadRequest("a tool call needs `function.name`", param=where)
    call_id = call.get("id") if isinstance(call, Mapping) else None
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest("a tool call needs an `id`", param=f"{where}.id")
    arguments = fn.get("arguments") or "{}"
    try:
        parsed = jsonutil.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        parsed = None
    if not isinstance(parsed, Mapping):
        raise BadRequest(
            "tool call arguments must be a JSON object", param=f"{where}.function.arguments"
        )
    return {"type": "tool_use", "id": call_id, "name": fn["name"], "input": dict(parsed)}


def _tool_result(m: Mapping[str, Any], where: str) -> dict[str, Any]:
    call_id = m.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest("a tool message needs `tool_call_id`", param=f"{where}.tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = m.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _user_blocks(content, where)
        if parts:
            block["content"] = parts[0]["text"] if plain_text(parts) else parts
    return block


def tool(t: Any, i: int) -> dict[str, Any]:
    fn = t.get("function") if isinstance(t, Mapping) else None
    if not isinstance(fn, Mapping) or t.get("type", "function") != "function":
        raise BadRequest(
            "only function tools can be sent to Anthropic backends", param=f"tools[{i}]"
        )
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("a tool needs `function.name`", param=f"tools[{i}].function.name")
    tool: dict[str, Any] = {"name": name}
    if isinstance(fn.get("description"), str) and fn["description"]:
        tool["description"] = fn["description"]
    params = fn.get("parameters")
    tool["input_schema"] = (
        dict(params) if isinstance(params, Mapping) else {"type": "object", "properties": {}}
    )
    if fn.get("strict") is True:
        tool["strict"] = True
    return tool


def tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice is None:
        out = None
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif (
        isinstance(choice, Mapping)
        and isinstance(choice.get("function"), Mapping)
        and isinstance(choice["function"].get("name"), str)
    ):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise BadRequest(
            "`tool_choice` must be auto, none, required or a named function", param="tool_choice"
        )
    if parallel is False and (out is None or out["type"] != "none"):
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def output_format(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return None  # text: the default; json_object: no Anthropic equivalent
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(schema, Mapping):
        raise BadRequest(
            "`response_format.json_schema.schema` must be an object",
            param="response_format.json_schema.schema",
        )
    return {"type": "json_schema", "schema": dict(schema)}
