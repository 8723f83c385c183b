"""OpenAI chat request body → Bedrock Converse request body (everything but `modelId`,
which travels in the path).

Shapes: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
and botocore's `bedrock-runtime` service model (the tests validate against it).

Mapping, and where Converse differs from OpenAI:
- system / developer messages → `system` text blocks (Converse has no mid-conversation
  system turn, so all of them are collected, in order).
- user / assistant messages → `messages`; tool messages → `toolResult` blocks in a *user*
  message. Converse wants user and assistant turns to alternate, so consecutive messages of
  the same Converse role are merged, and in a user turn the tool results go first (Claude
  refuses text before the results of the previous turn's tool calls).
- Blank text is dropped (Converse rejects empty text blocks); a message left with no
  content is skipped (clients send empty assistant turns). An empty tool result is sent as
  EMPTY_TOOL_RESULT for the same reason.
- Images must be inline `data:` URLs: Bedrock cannot fetch http(s) URLs (only S3).
- tool_choice: auto → auto, required → any, {"function": {"name"}} → tool. Converse has
  no "none": the tools are withheld, unless the history holds tool calls or results, in
  which case Converse requires `toolConfig` and the tools are sent without a toolChoice
  (the model then decides; "none" cannot be enforced there).
- Fields without a Converse equivalent (response_format, seed, penalties, logprobs, user,
  parallel_tool_calls, …) are dropped; n > 1 is refused (Converse returns one choice).
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Mapping
from typing import Any, Final

from common import jsonutil
from common.errors import BadRequest

Block = dict[str, Any]

IMAGE_FORMATS: Final[Mapping[str, str]] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
EMPTY_TOOL_RESULT: Final = "(empty)"


def converse_body(body: Mapping[str, Any], *, max_tokens: int) -> dict[str, Any]:
    """The Converse body for an OpenAI chat body; raises BadRequest naming the field."""
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest("Bedrock returns a single choice: `n` must be 1", param="n")
    system, messages = _messages(body.get("messages"))
    out: dict[str, Any] = {"messages": messages}
    if system:
        out["system"] = system
    out["inferenceConfig"] = _inference(body, max_tokens)
    tool_config = _tool_config(body, has_tool_blocks=_has_tool_blocks(messages))
    if tool_config is not None:
        out["toolConfig"] = tool_config
    return out


def _messages(value: object) -> tuple[list[Block], list[Block]]:
    if not isinstance(value, list):
        raise BadRequest("`messages` must be a non-empty array", param="messages")
    system: list[Block] = []
    messages: list[Block] = []
    for i, msg in enumerate(value):
        path = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise BadRequest("each message must be an object", param=path)
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _texts(msg.get("content"), f"{path}.content"))
            continue
        if role == "user":
            converse_role, blocks = "user", _user_blocks(msg.get("content"), f"{path}.content")
        elif role == "assistant":
            converse_role, blocks = "assistant", _assistant_blocks(msg, path)
        elif role == "tool":
            converse_role, blocks = "user", [_tool_result(msg, path)]
        else:
            raise BadRequest(
                f"unsupported message role {role!r}: use system, developer, user, assistant "
                "or tool",
                param=f"{path}.role",
            )
        if not blocks:
            continue
        if messages and messages[-1]["role"] == converse_role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": converse_role, "content": blocks})
    for message in messages:
        if message["role"] == "user":
            # tool results first; sorted() is stable, so the rest keep their order
            message["content"] = sorted(message["content"], key=lambda b: "toolResult" not in b)
    return system, messages


def _texts(content: object, path: str, *, kinds: tuple[str, ...] = ("text",)) -> list[str]:
    """A text-only content field (string, list of text parts, or null) → non-blank texts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content.strip() else []
    if not isinstance(content, list):
        raise BadRequest("`content` must be a string or an array of parts", param=path)
    texts = (_text_part(part, f"{path}[{j}]", kinds) for j, part in enumerate(content))
    return [t for t in texts if t]


def _text_part(part: object, path: str, kinds: tuple[str, ...]) -> str | None:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if not isinstance(part, Mapping) or kind not in kinds:
        raise BadRequest(
            f"content part type {kind!r} is not supported here by Bedrock backends",
            param=f"{path}.type",
        )
    text = part.get(kind)
    if not isinstance(text, str):
        raise BadRequest(f"`{kind}` must be a string", param=f"{path}.{kind}")
    return text if text.strip() else None


def _user_blocks(content: object, path: str) -> list[Block]:
    if not isinstance(content, list):
        return [{"text": t} for t in _texts(content, path)]
    blocks: list[Block] = []
    for j, part in enumerate(content):
        if isinstance(part, Mapping) and part.get("type") == "image_url":
            blocks.append(_image(part.get("image_url"), f"{path}[{j}].image_url"))
        elif text := _text_part(part, f"{path}[{j}]", ("text",)):
            blocks.append({"text": text})
    return blocks


def _image(value: object, path: str) -> Block:
    url = value.get("url") if isinstance(value, Mapping) else value
    if not isinstance(url, str):
        raise BadRequest("`image_url.url` must be a string", param=f"{path}.url")
    if url.startswith(("http://", "https://")):
        raise BadRequest(
            "Bedrock cannot fetch images from URLs: send the image inline as a base64 data "
            "URL (data:image/png;base64,...)",
            param=f"{path}.url",
        )
    header, comma, data = url.partition(",")
    mime, *params = header.removeprefix("data:").split(";")
    if not url.startswith("data:") or not comma or "base64" not in params:
        raise BadRequest(
            "`image_url.url` must be a base64 data URL (data:image/png;base64,...)",
            param=f"{path}.url",
        )
    image_format = IMAGE_FORMATS.get(mime.strip().lower())
    if image_format is None:
        raise BadRequest(
            f"image type {mime!r} is not supported by Bedrock: use png, jpeg, gif or webp",
            param=f"{path}.url",
        )
    try:
        if not b64decode(data, validate=True):
            raise ValueError("empty")
    except (binascii.Error, ValueError):
        raise BadRequest("the image data is not valid base64", param=f"{path}.url") from None
    # REST-JSON sends blobs as base64 text: the validated payload goes out as received
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _assistant_blocks(msg: Mapping[str, Any], path: str) -> list[Block]:
    content = msg.get("content")
    kinds = ("text", "refusal")
    blocks: list[Block] = [{"text": t} for t in _texts(content, f"{path}.content", kinds=kinds)]
    calls = msg.get("tool_calls")
    if calls is None:
        return blocks
    if not isinstance(calls, list):
        raise BadRequest("`tool_calls` must be an array", param=f"{path}.tool_calls")
    for k, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{path}.tool_calls[{k}]"))
    return blocks


def _tool_use(call: object, path: str) -> Block:
    if not isinstance(call, Mapping):
        raise BadRequest("each tool call must be an object", param=path)
    call_id = call.get("id")
    function = call.get("function")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest("a tool call needs an `id`", param=f"{path}.id")
    if not isinstance(function, Mapping) or not _name(function.get("name")):
        raise BadRequest("a tool call needs `function.name`", param=f"{path}.function.name")
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = jsonutil.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise BadRequest(
                "tool call arguments must be a JSON object", param=f"{path}.function.arguments"
            ) from None
    elif arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise BadRequest(
            "tool call arguments must be a JSON object", param=f"{path}.function.arguments"
        )
    return {"toolUse": {"toolUseId": call_id, "name": function["name"], "input": arguments}}


def _name(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _tool_result(msg: Mapping[str, Any], path: str) -> Block:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest("a tool message needs `tool_call_id`", param=f"{path}.tool_call_id")
    texts = _texts(msg.get("content"), f"{path}.content") or [EMPTY_TOOL_RESULT]
    return {"toolResult": {"toolUseId": call_id, "content": [{"text": t} for t in texts]}}


def _number(body: Mapping[str, Any], name: str) -> float | int | None:
    value: object = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadRequest(f"`{name}` must be a non-negative number", param=name)
    return value


def _inference(body: Mapping[str, Any], max_tokens: int) -> dict[str, Any]:
    config: dict[str, Any] = {"maxTokens": max_tokens}
    temperature = _number(body, "temperature")
    if temperature is not None:
        config["temperature"] = temperature
    top_p = _number(body, "top_p")
    if top_p is not None:
        config["topP"] = top_p
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise BadRequest("`stop` must be a string or an array of strings", param="stop")
        if any(stop):
            config["stopSequences"] = [s for s in stop if s]
    return config


def _has_tool_blocks(messages: list[Block]) -> bool:
    return any(
        "toolUse" in block or "toolResult" in block
        for message in messages
        for block in message["content"]
    )


def _tool_config(body: Mapping[str, Any], *, has_tool_blocks: bool) -> dict[str, Any] | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools is not None and not isinstance(tools, list):
        raise BadRequest("`tools` must be an array", param="tools")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise BadRequest("`tool_choice` needs `tools`", param="tool_choice")
        return None
    specs = [{"toolSpec": _tool_spec(tool, f"tools[{i}]")} for i, tool in enumerate(tools)]
    config: dict[str, Any] = {"tools": specs}
    if choice is None:
        return config
    if choice == "none":
        return config if has_tool_blocks else None
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        if not _name(name):
            raise BadRequest("`tool_choice.function.name` is required", param="tool_choice")
        config["toolChoice"] = {"tool": {"name": name}}
    else:
        raise BadRequest(
            '`tool_choice` must be "none", "auto", "required" or a named function',
            param="tool_choice",
        )
    return config


def _tool_spec(tool: object, path: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
        raise BadRequest("only function tools are supported by Bedrock backends", param=path)
    function = tool.get("function")
    if not isinstance(function, Mapping) or not _name(function.get("name")):
        raise BadRequest("a tool needs `function.name`", param=f"{path}.function.name")
    parameters = function.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise BadRequest(
            "`function.parameters` must be a JSON schema object",
            param=f"{path}.function.parameters",
        )
    spec: dict[str, Any] = {"name": function["name"]}
    description = function.get("description")
    if isinstance(description, str) and description:
        spec["description"] = description
    spec["inputSchema"] = {"json": parameters}
    return spec
