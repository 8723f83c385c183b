"""Profiles: the packaged data file loads and the step-time formula matches its doc."""

from __future__ import annotations

import pytest

from bench.vllmsim.profiles import get_profile, load_profiles, profile_names


def test_packaged_profiles_have_sources() -> None:
    names = profile_names()
    assert "gie-8b" in names and len(names) >= 2
    for name in names:
        p = get_profile(name)
        assert p.source and p.description
        assert p.engine.block_size == 16


def test_gie_constants() -> None:
    p = get_profile("gie-8b")
    assert p.step_seconds(100, 0, 0) == pytest.approx(0.040)  # the 40 ms floor
    assert p.step_seconds(512, 0, 0) == pytest.approx((19.69 + 0.06769 * 512) / 1000)
    assert p.step_seconds(0, 10_000, 10) == pytest.approx((14 + 5.353e-4 * 10_000 + 1.0265) / 1000)
    mixed = p.step_seconds(512, 10_000, 10)
    assert mixed == pytest.approx(p.step_seconds(512, 0, 0) + p.step_seconds(0, 10_000, 10))
    assert p.step_seconds(0, 0, 1, lora_loads=1) == pytest.approx(p.step_seconds(0, 0, 1) + 0.025)


def test_unknown_profile_lists_known_names() -> None:
    with pytest.raises(KeyError, match="gie-8b"):
        get_profile("nope")


def test_load_from_text() -> None:
    text = """
profiles:
  t:
    prefill: {min_ms: 1, base_ms: 0, per_token_ms: 1}
    decode: {base_ms: 1, per_kv_token_ms: 0, per_seq_ms: 0}
    engine: {num_gpu_blocks: 10, block_size: 4, max_num_seqs: 2, max_num_batched_tokens: 8,
             max_model_len: 32}
    output_len: {median: 5, sigma: 0.1}
"""
    p = load_profiles(text)["t"]
    assert p.step_seconds(3, 0, 0) == pytest.approx(0.003)
