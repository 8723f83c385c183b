"""OpenAI chat requests → Gemini `generateContent` bodies, shared by the Gemini API and
Vertex AI (one request schema, two URL layouts and auth schemes).

Request mapping (https://ai.google.dev/api/generate-content#request-body; Vertex:
https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference):

    system / developer messages       → systemInstruction.parts (wherever they appear)
    user                              → role "user"; assistant → role "model"
    image_url data: URL               → inlineData {mimeType, data}
    image_url http(s):// or gs:// URL → fileData {mimeType guessed from the extension
                                        (`MIME_TYPES`; unknown → image/jpeg), fileUri}
    input_audio / file (data: URL)    → inlineData
    assistant tool_calls              → functionCall {name, args}; the call's
                                        extra_content.google.thought_signature (Google's
                                        own OpenAI layer uses that field) → thoughtSignature
    tool messages                     → functionResponse {name, response} in a user turn;
                                        the name comes from the matching tool call id,
                                        response is the content when it is a JSON object,
                                        else {"content": text}
    tools                             → tools[0].functionDeclarations (see _gemini_schema)
    tool_choice auto|none|required    → toolConfig.functionCallingConfig.mode AUTO|NONE|ANY
    tool_choice {function: {name}}    → mode ANY + allowedFunctionNames [name]
    max_(completion_)tokens           → generationConfig.maxOutputTokens
    temperature top_p stop n seed presence_penalty frequency_penalty
                                      → temperature topP stopSequences candidateCount seed
                                        presencePenalty frequencyPenalty
    response_format json_object       → responseMimeType application/json
    response_format json_schema       → the same + responseJsonSchema (JSON Schema as sent,
                                        less the keywords the API does not list)
    reasoning_effort                  → thinkingConfig (`THINKING_BUDGETS`)

Consecutive turns of one role are merged into one turn: parallel tool results must
reach Gemini as one turn with one functionResponse per functionCall. Empty text is
dropped (the API rejects an empty text part).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from common import jsonutil
from common.errors import BadRequest
from tier1.providers._gemini_schema import parameters_schema, response_json_schema
from tier1.providers.base import ParsedRequest

# reasoning_effort → thinkingBudget in tokens. low/medium/high are the budgets Google's
# own OpenAI-compatibility layer uses for 2.5 models
# (https://ai.google.dev/gemini-api/docs/openai#thinking); "none" turns thinking off
# (0; 2.5 Pro cannot, and answers 400); "minimal" gets the low budget and "xhigh" the
# high one (24576 is the largest budget 2.5 Flash accepts). A positive budget also sets
# includeThoughts, so the thought summaries come back as `reasoning_content`.
THINKING_BUDGETS = {
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
}
TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
MIME_TYPES = {
    # the image, audio, video and document types Gemini lists as inputs
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "mp4": "video/mp4",
    "mov": "video/mov",
    "webm": "video/webm",
}
_AUDIO_FORMATS = {"wav": "audio/wav", "mp3": "audio/mp3"}


# ---------------------------------------------------------------- request


def request_body(req: ParsedRequest) -> dict[str, Any]:
    """The `generateContent` body for an OpenAI chat request (never mutates `req`)."""
    if req.endpoint != "chat":
        raise BadRequest(
            f"this backend speaks Gemini and serves only chat completions, not {req.endpoint}"
        )
    body = req.body
    system, contents = _contents(body["messages"])
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    declarations = _declarations(body.get("tools"))
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
        choice = _function_calling(body.get("tool_choice"))
        if choice:
            out["toolConfig"] = {"functionCallingConfig": choice}
    config = _generation_config(req)
    if config:
        out["generationConfig"] = config
    return out


def _texts(content: Any, where: str) -> list[str]:
    """Text of a string or an array of text parts (system, tool and assistant content)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"`{where}.content` must be a string or an array", param=where)
    out = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        text = part.get(kind) if kind in ("text", "refusal") else None
        if not isinstance(text, str):
            raise BadRequest(
                f"`{where}.content[{j}]` must be a text part here", param=f"{where}.content[{j}]"
            )
        if text:
            out.append(text)
    return out


def _contents(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool call id → function name, latest wins

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping):
            raise BadRequest(f"`{where}` must be an object", param=where)
        role = m.get("role")
        if role in ("system", "developer"):
            system += [{"text": t} for t in _texts(m.get("content"), where)]
        elif role == "user":
            add("user", _user_parts(m.get("content"), where))
        elif role == "assistant":
            add("model", _assistant_parts(m, where, call_names))
        elif role in ("tool", "function"):
            add("user", [_function_response(m, where, call_names)])
        else:
            raise BadRequest(f"`{where}.role` {role!r} is not a chat role", param=f"{where}.role")
    if not contents:
        raise BadRequest("`messages` needs at least one non-empty user message", param="messages")
    return system, contents


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"`{where}.content` must be a string or an array", param=where)
    parts = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str) or not url:
                raise BadRequest(f"`{at}.image_url.url` must be a URL", param=f"{at}.image_url")
            parts.append(_media(url, f"{at}.image_url.url", default_mime="image/jpeg"))
        elif kind == "input_audio":
            audio = part.get("input_audio")
            fmt = audio.get("format") if isinstance(audio, Mapping) else None
            data = audio.get("data") if isinstance(audio, Mapping) else None
            if fmt not in _AUDIO_FORMATS or not isinstance(data, str):
                raise BadRequest(
                    f"`{at}.input_audio` needs base64 `data` and `format` wav or mp3", param=at
                )
            parts.append({"inlineData": {"mimeType": _AUDIO_FORMATS[fmt], "data": data}})
        elif kind == "file":
            file = part.get("file")
            data = file.get("file_data") if isinstance(file, Mapping) else None
            if not isinstance(data, str) or not data.startswith("data:"):
                raise BadRequest(
                    f"`{at}.file` needs `file_data` as a data: URL (file ids are OpenAI's)",
                    param=at,
                )
            parts.append(_media(data, f"{at}.file.file_data", default_mime=None))
        else:
            raise BadRequest(f"`{at}` has a content part type Gemini cannot take", param=at)
    return parts


def _media(url: str, where: str, *, default_mime: str | None) -> dict[str, Any]:
    if url.startswith("data:"):
        header, sep, payload = url[5:].partition(",")
        mime, _, params = header.partition(";")
        if not sep or not mime:
            raise BadRequest(f"`{where}` is not a valid data: URL with a media type", param=where)
        if "base64" in params.split(";"):
            try:
                base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"`{where}` has invalid base64 data", param=where) from None
            data = payload
        else:
            data = base64.b64encode(unquote_to_bytes(payload)).decode()
        return {"inlineData": {"mimeType": mime, "data": data}}
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https", "gs"):
        raise BadRequest(f"`{where}` must be a data:, http(s):// or gs:// URL", param=where)
    path = urlsplit(url).path
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    guessed = MIME_TYPES.get(ext) or default_mime
    if guessed is None:
        raise BadRequest(f"`{where}`: cannot tell the media type of {url!r}", param=where)
    return {"fileData": {"mimeType": guessed, "fileUri": url}}


def _assistant_parts(
    m: Mapping[str, Any], where: str, call_names: dict[str, str]
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": t} for t in _texts(m.get("content"), where)]
    calls = m.get("tool_calls") or []
    if not isinstance(calls, list):
        raise BadRequest(f"`{where}.tool_calls` must be an array", param=f"{where}.tool_calls")
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadRequest(f"`{at}.function.name` is required", param=f"{at}.function.name")
        name: str = fn["name"]
        raw = fn.get("arguments") or "{}"
        try:
            args = jsonutil.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            args = None
        if not isinstance(args, Mapping):
            raise BadRequest(
                f"`{at}.function.arguments` must be a JSON object", param=f"{at}.function"
            )
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        extra = call.get("extra_content")
        google = extra.get("google") if isinstance(extra, Mapping) else None
        signature = google.get("thought_signature") if isinstance(google, Mapping) else None
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
        call_id = call.get("id")
        if isinstance(call_id, str):
            call_names[call_id] = name
    return parts


def _function_response(
    m: Mapping[str, Any], where: str, call_names: Mapping[str, str]
) -> dict[str, Any]:
    call_id = m.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    name = name or (m.get("name") if isinstance(m.get("name"), str) else None)
    if not name:
        raise BadRequest(
            f"`{where}.tool_call_id` {call_id!r} matches no earlier assistant tool call",
            param=f"{where}.tool_call_id",
        )
    text = "".join(_texts(m.get("content"), where))
    try:
        parsed = jsonutil.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _declarations(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise BadRequest("`tools` must be an array", param="tools")
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(tool, Mapping) or tool.get("type") != "function" or not fn:
            raise BadRequest(f"`tools[{i}]`: only function tools reach Gemini", param=f"tools[{i}]")
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if not isinstance(name, str) or not name:
            raise BadRequest(f"`tools[{i}].function.name` is required", param=f"tools[{i}]")
        decl: dict[str, Any] = {"name": name}
        if isinstance(fn.get("description"), str):
            decl["description"] = fn["description"]
        params = parameters_schema(fn.get("parameters"))
        if params is not None:
            decl["parameters"] = params
        out.append(decl)
    return out


def _function_calling(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in TOOL_MODES:
        return {"mode": TOOL_MODES[choice]}
    fn = choice.get("function") if isinstance(choice, Mapping) else None
    name = fn.get("name") if isinstance(fn, Mapping) else None
    if isinstance(name, str) and name:
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise BadRequest(
        "`tool_choice` must be auto, none, required or {type: function, function: {name}}",
        param="tool_choice",
    )


def _number(body: Mapping[str, Any], name: str) -> float | int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadRequest(f"`{name}` must be a number", param=name)
    return value


def _generation_config(req: ParsedRequest) -> dict[str, Any]:
    body = req.body
    config: dict[str, Any] = {}
    if req.max_tokens is not None:
        config["maxOutputTokens"] = req.max_tokens
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = _number(body, src)
        if value is not None:
            config[dst] = value
    for src, dst in (("n", "candidateCount"), ("seed", "seed")):
        value = _number(body, src)
        if value is not None:
            if not isinstance(value, int):
                raise BadRequest(f"`{src}` must be an integer", param=src)
            config[dst] = value
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            config["stopSequences"] = stop
    elif stop is not None:
        raise BadRequest("`stop` must be a string or an array of strings", param="stop")
    config.update(_response_format(body.get("response_format")))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in THINKING_BUDGETS:
            raise BadRequest(
                f"`reasoning_effort` must be one of {', '.join(THINKING_BUDGETS)}",
                param="reasoning_effort",
            )
        budget = THINKING_BUDGETS[effort]
        config["thinkingConfig"] = (
            {"thinkingBudget": budget, "includeThoughts": True} if budget else {"thinkingBudget": 0}
        )
    return config


def _response_format(fmt: Any) -> dict[str, Any]:
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if fmt is None or kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise BadRequest(
                "`response_format.json_schema.schema` must be an object",
                param="response_format.json_schema.schema",
            )
        return {
            "responseMimeType": "application/json",
            "responseJsonSchema": response_json_schema(schema),
        }
    raise BadRequest(
        "`response_format.type` must be text, json_object or json_schema",
        param="response_format",
    )
