"""Named step-time profiles (the cost model of one engine step), loaded from profiles.yaml.

Why data and not code: every tier2 number is measured against these constants, so they
must be easy to read, cite and re-fit. Each profile in ``profiles.yaml`` states its
source. The formulas are documented at the top of that file and in
:meth:`Profile.step_seconds`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "DEFAULT_PROFILE",
    "DecodeModel",
    "EngineDefaults",
    "OutputLenDist",
    "PrefillModel",
    "Profile",
    "get_profile",
    "load_profiles",
    "profile_names",
]

DEFAULT_PROFILE = "gie-8b"


@dataclass(frozen=True, slots=True)
class PrefillModel:
    """``max(min_ms, base_ms + per_token_ms * T)`` for T prompt tokens computed in a step."""

    min_ms: float
    base_ms: float
    per_token_ms: float


@dataclass(frozen=True, slots=True)
class DecodeModel:
    """``base_ms + per_kv_token_ms * K + per_seq_ms * B`` for B sequences holding K KV tokens."""

    base_ms: float
    per_kv_token_ms: float
    per_seq_ms: float


@dataclass(frozen=True, slots=True)
class OutputLenDist:
    """Lognormal answer length in tokens (median, sigma), used when EOS is honoured."""

    median: float
    sigma: float

    def draw(self, rng: random.Random) -> int:
        return max(1, round(rng.lognormvariate(math.log(self.median), self.sigma)))


@dataclass(frozen=True, slots=True)
class EngineDefaults:
    """The vLLM engine arguments a profile stands for."""

    num_gpu_blocks: int
    block_size: int
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    gpu_memory_utilization: float


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    source: str
    prefill: PrefillModel
    decode: DecodeModel
    lora_load_ms: float
    engine: EngineDefaults
    output_len: OutputLenDist

    def step_seconds(
        self, prefill_tokens: int, kv_tokens: int, num_decodes: int, lora_loads: int = 0
    ) -> float:
        """Duration of one step in (model) seconds.

        A step that prefills pays the prefill part, a step that decodes pays the decode
        part, a mixed step pays both; each adapter moved into a GPU slot adds its load time.
        """
        ms = 0.0
        if prefill_tokens > 0:
            p = self.prefill
            ms += max(p.min_ms, p.base_ms + p.per_token_ms * prefill_tokens)
        if num_decodes > 0:
            d = self.decode
            ms += d.base_ms + d.per_kv_token_ms * kv_tokens + d.per_seq_ms * num_decodes
        if lora_loads:
            ms += self.lora_load_ms * lora_loads
        return ms / 1000.0


def _profile_from_dict(name: str, raw: dict[str, Any]) -> Profile:
    return Profile(
        name=name,
        description=str(raw.get("description", "")).strip(),
        source=str(raw.get("source", "")).strip(),
        prefill=PrefillModel(**{k: float(v) for k, v in raw["prefill"].items()}),
        decode=DecodeModel(**{k: float(v) for k, v in raw["decode"].items()}),
        lora_load_ms=float(raw.get("lora_load_ms", 0.0)),
        engine=EngineDefaults(
            num_gpu_blocks=int(raw["engine"]["num_gpu_blocks"]),
            block_size=int(raw["engine"]["block_size"]),
            max_num_seqs=int(raw["engine"]["max_num_seqs"]),
            max_num_batched_tokens=int(raw["engine"]["max_num_batched_tokens"]),
            max_model_len=int(raw["engine"]["max_model_len"]),
            gpu_memory_utilization=float(raw["engine"].get("gpu_memory_utilization", 0.9)),
        ),
        output_len=OutputLenDist(
            median=float(raw["output_len"]["median"]), sigma=float(raw["output_len"]["sigma"])
        ),
    )


def load_profiles(text: str | None = None) -> dict[str, Profile]:
    """Parse profiles from YAML text, or from the packaged ``profiles.yaml``."""
    if text is None:
        text = resources.files("bench.vllmsim").joinpath("profiles.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return {name: _profile_from_dict(name, raw) for name, raw in data["profiles"].items()}


@cache
def _packaged() -> dict[str, Profile]:
    return load_profiles()


def profile_names() -> list[str]:
    return sorted(_packaged())


def get_profile(name: str = DEFAULT_PROFILE) -> Profile:
    """A packaged profile by name; ``KeyError`` lists the known names."""
    try:
        return _packaged()[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(profile_names())}") from None
