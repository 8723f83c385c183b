"""Property: OpenAI chat request → Anthropic Messages → OpenAI chat keeps every text and
tool call of generated conversations, and the Anthropic side alternates roles and fits
the anthropic SDK's request types."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from common import jsonutil
from tests.support.anthropic_wire import assert_messages_request
from tier1.providers import _anthropic_common as ac
from tier1.providers.anthropic_openai import messages_to_chat

_text = st.text(st.characters(categories=("L", "N", "Zs")), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and s != ""
)
_args = st.dictionaries(st.sampled_from(["a", "b", "city"]), st.integers(-5, 5) | _text, max_size=2)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(_text)})
    calls = 0
    for _ in range(draw(st.integers(1, 4))):
        for _ in range(draw(st.integers(1, 2))):
            messages.append({"role": "user", "content": draw(_text)})
        text = draw(st.none() | _text)
        tool_calls = []
        for _ in range(draw(st.integers(0 if text else 1, 2))):
            calls += 1
            tool_calls.append(
                {
                    "id": f"call_{calls}",
                    "type": "function",
                    "function": {
                        "name": draw(st.sampled_from(["f", "g"])),
                        "arguments": jsonutil.dumps(draw(_args)).decode(),
                    },
                }
            )
        assistant: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            assistant["tool_calls"] = tool_calls
        messages.append(assistant)
        for call in tool_calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(_text)})
    messages.append({"role": "user", "content": draw(_text)})
    return messages


def _atoms(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must survive: texts per role, tool calls (id, name, arguments as data) and
    tool results, in order. Message boundaries may move (Anthropic merges turns)."""
    out: list[tuple[Any, ...]] = []
    for m in messages:
        content = m.get("content")
        parts = [content] if isinstance(content, str) else [p["text"] for p in content or []]
        if m["role"] == "tool":
            out.append(("result", m["tool_call_id"], "".join(parts)))
            continue
        out.extend((m["role"], p) for p in parts if p)
        for call in m.get("tool_calls") or []:
            fn = call["function"]
            out.append(("call", call["id"], fn["name"], jsonutil.loads(fn["arguments"])))
    return out


@given(conversations())
def test_round_trip_keeps_texts_and_tool_calls(messages: list[dict[str, Any]]) -> None:
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("f", "g")
    ]
    anthropic_body = ac.chat_to_messages(
        {"model": "m", "messages": messages, "tools": tools}, model="claude", default_max_tokens=64
    )
    assert_messages_request(anthropic_body)
    roles = [t["role"] for t in anthropic_body["messages"]]
    assert all(a != b for a, b in zip(roles, roles[1:], strict=False)), "roles must alternate"
    back = messages_to_chat(anthropic_body, upstream_model="m", force_usage=False)
    assert _atoms(back["messages"]) == _atoms(messages)
    assert [t["function"]["name"] for t in back["tools"]] == ["f", "g"]
