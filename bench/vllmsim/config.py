"""SimConfig: how to run simulated pods, shared by the HTTP pods and the DES (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from bench.vllmsim.engine import EngineConfig
from bench.vllmsim.faults import FaultSpec
from bench.vllmsim.profiles import DEFAULT_PROFILE

__all__ = ["SimConfig", "pod_rng"]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """How to run simulated pods; ``None`` engine fields take the profile's defaults."""

    profile: str = DEFAULT_PROFILE
    model: str = "sim-llama-8b"
    speed: float = 1.0
    """Model seconds per real second: 10 runs ten times faster than the hardware would."""
    max_loras: int = 0
    seed: int = 0
    mode: Literal["random", "echo"] = "random"
    faults: FaultSpec = FaultSpec()
    loras: tuple[str, ...] = ()
    """Adapters registered at start (needs ``max_loras`` > 0)."""
    num_gpu_blocks: int | None = None
    block_size: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    max_model_len: int | None = None
    record_steps: bool = False
    """Keep every step's (start, duration) in ``PodRunner.step_log`` (tests)."""
    spin_lead_ms: float = 0.0
    """Real milliseconds before each step's end from which the step loop polls instead of
    sleeping: punctual token emission on machines slow to wake a sleeping core, for CPU."""

    def engine_config(self) -> EngineConfig:
        return EngineConfig.from_profile(
            self.profile,
            model_name=self.model,
            max_loras=self.max_loras,
            num_gpu_blocks=self.num_gpu_blocks,
            block_size=self.block_size,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            max_model_len=self.max_model_len,
        )


def pod_rng(seed: int, index: int) -> random.Random:
    """The engine RNG of pod ``index``; shared with the discrete-event simulator."""
    return random.Random(f"vllmsim:{seed}:{index}")
