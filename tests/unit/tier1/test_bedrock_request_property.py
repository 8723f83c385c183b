"""Property: whatever JSON a client sends, the Bedrock translator either refuses it with a
BadRequest naming the field, or builds a body botocore's input shape accepts."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from common.errors import BadRequest
from tests.support.bedrock import CLOCK_TOOL, PNG, WEATHER, translate

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-2, 2, allow_nan=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def mostly(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The plausible shape nine times out of ten, arbitrary JSON otherwise."""
    return st.integers(0, 9).flatmap(lambda k: JSON if k == 0 else strategy)


PART = mostly(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "text", "image_url", "refusal", "file"])},
        optional={
            "text": mostly(st.text(max_size=4)),
            "refusal": st.text(max_size=4),
            "image_url": st.sampled_from(
                [{"url": f"data:image/png;base64,{PNG}"}, {"url": "http://x/y.png"}, "data:,", {}]
            ),
        },
    )
)
TOOL_CALL = mostly(
    st.fixed_dictionaries(
        {
            "id": mostly(st.sampled_from(["call_1", ""])),
            "function": mostly(
                st.fixed_dictionaries(
                    {
                        "name": mostly(st.sampled_from(["f", ""])),
                        "arguments": mostly(
                            st.sampled_from(['{"a": [1, {"b": null}]}', "", "[1]", "{"])
                        ),
                    }
                )
            ),
        }
    )
)
MESSAGE = mostly(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(
                ["system", "developer", "user", "user", "assistant", "assistant", "tool", "bot"]
            ),
            "content": mostly(st.none() | st.text(max_size=4) | st.lists(PART, max_size=3)),
        },
        optional={
            "tool_calls": mostly(st.lists(TOOL_CALL, max_size=2)),
            "tool_call_id": mostly(st.just("call_1")),
        },
    )
)
BODY = st.fixed_dictionaries(
    {"messages": st.lists(MESSAGE, min_size=1, max_size=5)},
    optional={
        "tools": mostly(
            st.lists(st.sampled_from([WEATHER, CLOCK_TOOL, {"type": "x"}]), max_size=2)
        ),
        "tool_choice": mostly(
            st.sampled_from(
                ["auto", "none", "required", {"type": "function", "function": {"name": "now"}}]
            )
        ),
        "temperature": mostly(st.floats(0, 1)),
        "top_p": mostly(st.floats(0, 1)),
        "stop": mostly(st.lists(st.text(max_size=3), max_size=3)),
        "n": mostly(st.just(1)),
        "stream": st.booleans(),
    },
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(BODY)
def test_any_client_body_is_refused_or_valid_for_bedrock(body: dict[str, Any]) -> None:
    """Client JSON never crashes the translator: BadRequest, or a body botocore accepts."""
    try:
        translate(body)
    except BadRequest as e:
        event(f"refused: {e.param}")
    else:
        event("valid")
