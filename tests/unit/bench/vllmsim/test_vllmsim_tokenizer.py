"""Tokenizer: determinism, size, and the chat-template prefix property."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.vllmsim import tokenizer as tk

_text = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=200)


def test_encode_is_deterministic_and_about_four_chars_per_token() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 50
    ids = tk.encode(text)
    assert ids == tk.encode(text)
    assert 3.0 <= len(text) / len(ids) <= 5.0


def test_pieces_concatenate_to_the_text() -> None:
    text = "<|im_start|>user\nhello   world\n\n  x<|im_end|>\n"
    assert "".join(p for _, p in tk.encode_pieces(text)) == text


def test_special_tokens_are_atomic() -> None:
    assert tk.encode(tk.IM_START) == [1]
    assert tk.encode(tk.IM_END) == [2]


def test_pseudo_text_round_trips() -> None:
    ids = tk.pseudo_output_ids(123, 500)
    assert tk.encode(tk.decode_pseudo(ids)) == ids
    assert tk.pseudo_output_ids(65_530, 20) == tk.pseudo_output_ids(65_530, 20)
    assert len(tk.pseudo_output_ids(65_530, 20)) == 20


@settings(max_examples=80, deadline=None)
@given(system=_text, user=_text, answer_n=st.integers(1, 60), nxt=_text)
def test_turn_two_extends_turn_one_prompt_and_answer(
    system: str, user: str, answer_n: int, nxt: str
) -> None:
    answer_ids = tk.pseudo_output_ids(answer_n * 7, answer_n)
    turn1 = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    p1 = tk.encode_chat(turn1)
    turn2 = [
        *turn1,
        {"role": "assistant", "content": tk.decode_pseudo(answer_ids)},
        {"role": "user", "content": nxt},
    ]
    p2 = tk.encode_chat(turn2)
    assert p2[: len(p1) + answer_n] == p1 + answer_ids
    # the incremental construction used by the workload generator is exact
    tail = tk.encode(f"{tk.IM_END}\n{tk.IM_START}user\n{nxt}{tk.IM_END}\n") + tk.encode(
        f"{tk.IM_START}assistant\n"
    )
    assert p2 == p1 + answer_ids + tail


def test_content_parts_render_like_strings() -> None:
    a = tk.encode_chat([{"role": "user", "content": "hello world"}])
    b = tk.encode_chat([{"role": "user", "content": [{"type": "text", "text": "hello world"}]}])
    assert a == b


def test_bad_messages_raise() -> None:
    for bad in (
        [{"role": "wizard", "content": "x"}],
        ["not a dict"],
        [{"role": "user", "content": 3}],
    ):
        try:
            tk.encode_chat(bad)
        except tk.ChatFormatError:
            continue
        raise AssertionError(f"accepted {bad!r}")
