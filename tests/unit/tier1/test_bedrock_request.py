"""OpenAI chat request → Bedrock Converse request: golden path, headers and bodies, each
body also validated against botocore's bedrock-runtime input shape."""

from __future__ import annotations

from typing import Any

import pytest

from common import jsonutil
from common.errors import BadRequest
from tests.support.bedrock import (
    BASE,
    CLOCK_TOOL,
    MODEL,
    PNG,
    WEATHER,
    assert_valid_request,
    parsed,
    translate,
    translator,
)
from tier1.providers.base import Translator, UpstreamRequest
from tier1.providers.openai_bedrock import ChatToConverse


def test_is_a_translator() -> None:
    t: Translator = ChatToConverse(BASE, 1024)
    assert t.error(400, b'{"message": "m"}')[0] == 400


def test_request_validation_is_not_a_no_op() -> None:
    url = f"{BASE}/model/m/converse"
    bad = {"messages": [{"role": "user", "content": [{"txt": "x"}]}], "toolConfig": {"tools": []}}
    with pytest.raises(AssertionError, match="Unknown parameter"):
        assert_valid_request(
            UpstreamRequest("POST", url, {}, jsonutil.dumps(bad)), "m", stream=False
        )
    with pytest.raises(AssertionError):  # the model id must be in the path, encoded
        assert_valid_request(
            UpstreamRequest("POST", url, {}, b'{"messages": []}'), "m:0", stream=False
        )


def test_text_golden() -> None:
    up, _ = translate(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emojis."}]},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": [{"type": "text", "text": "Tell me a joke"}]},
            ],
            "max_tokens": 100,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "seed": 7,
            "user": "u-1",
        }
    )
    assert up.method == "POST"
    assert up.url == f"{BASE}/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    assert up.headers == {"content-type": "application/json", "accept": "application/json"}
    assert up.body == jsonutil.dumps(
        {
            "messages": [
                {"role": "user", "content": [{"text": "Hi"}]},
                {"role": "assistant", "content": [{"text": "Hello!"}]},
                {"role": "user", "content": [{"text": "Tell me a joke"}]},
            ],
            "system": [{"text": "Be brief."}, {"text": "No emojis."}],
            "inferenceConfig": {
                "maxTokens": 100,
                "temperature": 0.5,
                "topP": 0.9,
                "stopSequences": ["END"],
            },
        }
    )


def test_stream_uses_converse_stream_and_an_arn_is_one_path_segment() -> None:
    arn = (
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
        "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
    )
    up, body = translate(
        {"messages": [{"role": "user", "content": "Hi"}], "stream": True}, model=arn
    )
    assert up.url == (
        f"{BASE}/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile"
        "%2Fus.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
    )
    assert up.headers["accept"] == "application/vnd.amazon.eventstream"
    assert body["inferenceConfig"] == {"maxTokens": 4096}  # the backend's default


def test_max_completion_tokens_and_stop_list() -> None:
    _, body = translate(
        {
            "messages": [{"role": "user", "content": "Hi"}],
            "max_completion_tokens": 42,
            "stop": ["a", "", "b"],
        }
    )
    assert body["inferenceConfig"] == {"maxTokens": 42, "stopSequences": ["a", "b"]}


def test_images_golden() -> None:
    _, body = translate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What are these?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/jpg;base64,{PNG}", "detail": "low"},
                        },
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/webp;base64,{PNG}"},
                        },
                    ],
                }
            ]
        }
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "What are these?"},
                {"image": {"format": "png", "source": {"bytes": PNG}}},
                {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
                {"image": {"format": "webp", "source": {"bytes": PNG}}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("https://example.com/cat.png", "cannot fetch images from URLs"),
        ("http://example.com/cat.png", "cannot fetch images from URLs"),
        (f"data:image/svg+xml;base64,{PNG}", "not supported by Bedrock"),
        ("data:image/png,rawbytes", "base64 data URL"),
        ("data:image/png;base64,***", "not valid base64"),
        ("data:image/png;base64,", "not valid base64"),
        ("ftp://example.com/cat.png", "base64 data URL"),
    ],
)
def test_images_that_cannot_be_sent(url: str, match: str) -> None:
    with pytest.raises(BadRequest, match=match) as e:
        translate(
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
                ]
            }
        )
    assert e.value.param == "messages[0].content[0].image_url.url"


def test_tools_golden() -> None:
    up, _ = translate(
        {
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [WEATHER, CLOCK_TOOL],
            "tool_choice": "auto",
        }
    )
    assert jsonutil.loads(up.body)["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "inputSchema": {"json": WEATHER["function"]["parameters"]},
                }
            },
            {
                "toolSpec": {
                    "name": "now",
                    "inputSchema": {"json": {"type": "object", "properties": {}}},
                }
            },
        ],
        "toolChoice": {"auto": {}},
    }


CALL_HISTORY = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
]


@pytest.mark.parametrize(
    ("choice", "history", "expected"),
    [
        (None, False, "tools only"),
        ("auto", False, {"auto": {}}),
        ("required", False, {"any": {}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            False,
            {"tool": {"name": "get_weather"}},
        ),
        ("none", False, "no toolConfig"),
        # the history holds toolUse/toolResult blocks: Converse then requires toolConfig
        ("none", True, "tools only"),
    ],
)
def test_tool_choice(choice: Any, history: bool, expected: Any) -> None:
    messages = CALL_HISTORY if history else [{"role": "user", "content": "Hi"}]
    body: dict[str, Any] = {"messages": messages, "tools": [WEATHER]}
    if choice is not None:
        body["tool_choice"] = choice
    _, out = translate(body)
    if expected == "no toolConfig":
        assert "toolConfig" not in out
    elif expected == "tools only":
        assert list(out["toolConfig"]) == ["tools"]
    else:
        assert out["toolConfig"]["toolChoice"] == expected


def test_tool_calls_and_results_golden() -> None:
    _, body = translate(
        {
            "messages": [*CALL_HISTORY, {"role": "user", "content": "And tomorrow?"}],
            "tools": [WEATHER],
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "call_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
                {
                    "toolUse": {
                        "toolUseId": "call_2",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    }
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}},
                {"toolResult": {"toolUseId": "call_2", "content": [{"text": "21C"}]}},
                {"text": "And tomorrow?"},
            ],
        },
    ]


def test_roles_alternate_and_tool_results_come_first() -> None:
    _, body = translate(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": ""},  # empty turn: skipped
                {"role": "user", "content": "b"},
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "Let me look."}],
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "now", "arguments": ""},
                        }
                    ],
                },
                {"role": "user", "content": "hurry"},
                {"role": "tool", "tool_call_id": "c", "content": ""},
            ],
            "tools": [CLOCK_TOOL],
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
        {
            "role": "assistant",
            "content": [
                {"text": "Let me look."},
                {"toolUse": {"toolUseId": "c", "name": "now", "input": {}}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "c", "content": [{"text": "(empty)"}]}},
                {"text": "hurry"},
            ],
        },
    ]


def test_the_client_request_is_not_mutated() -> None:
    body = {"model": MODEL, "messages": CALL_HISTORY, "tools": [WEATHER]}
    req = parsed(body)
    before = jsonutil.dumps(req.body)
    first = translator().request(req, upstream_model=MODEL, force_usage=False)
    again = translator().request(req, upstream_model=MODEL, force_usage=False)
    assert jsonutil.dumps(req.body) == before and first == again


def _bad(messages: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"messages": messages or [{"role": "user", "content": "Hi"}], **extra}


def _call(arguments: str) -> list[Any]:
    return [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": arguments}}],
        },
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (_bad(n=2), "n"),
        (_bad([{"role": "function", "content": "x"}]), "messages[0].role"),
        (_bad(["hello"]), "messages[0]"),
        (_bad([{"role": "user", "content": 5}]), "messages[0].content"),
        (
            _bad([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
            "messages[0].content[0].type",
        ),
        (
            _bad([{"role": "user", "content": [{"type": "text", "text": 1}]}]),
            "messages[0].content[0].text",
        ),
        (_bad(_call("{not json")), "messages[1].tool_calls[0].function.arguments"),
        (_bad(_call("[1, 2]")), "messages[1].tool_calls[0].function.arguments"),
        (
            _bad([{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]),
            "messages[0].tool_calls[0].id",
        ),
        (_bad([{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
        (_bad(temperature="hot"), "temperature"),
        (_bad(top_p=True), "top_p"),
        (_bad(stop=[1]), "stop"),
        (_bad(tools=[{"type": "web_search"}]), "tools[0]"),
        (_bad(tools=[{"type": "function", "function": {}}]), "tools[0].function.name"),
        (_bad(tool_choice="required"), "tool_choice"),
        (_bad(tools=[WEATHER], tool_choice={"type": "function"}), "tool_choice"),
        (_bad(tools=[WEATHER], tool_choice="sometimes"), "tool_choice"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as e:
        translate(body)
    assert e.value.param == param


def test_only_chat_is_served() -> None:
    req = parsed({"model": MODEL, "input": "x"}, "embeddings")
    with pytest.raises(BadRequest, match="chat completions only"):
        translator().request(req, upstream_model=MODEL, force_usage=False)
