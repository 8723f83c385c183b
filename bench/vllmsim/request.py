"""One request as the engine sees it: what the client asked for and how far it got.

Kept apart from the scheduler so the HTTP shell and the simulator can hold requests
without touching scheduling code. All times are model seconds.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from bench.vllmsim.kvcache import KVSeq

__all__ = ["Request", "RequestSpec", "RequestStatus"]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What a client asked for, already tokenized."""

    request_id: str
    prompt_token_ids: Sequence[int]
    max_tokens: int
    ignore_eos: bool = False
    lora: str | None = None
    output_token_ids: Sequence[int] | None = None
    """Force the answer's tokens (echo mode); otherwise pseudo text of a drawn length."""


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class Request(KVSeq):
    """Engine-side state of one request. Times are model seconds."""

    __slots__ = (
        "arrival_time",
        "finish_reason",
        "finish_time",
        "first_scheduled_time",
        "first_token_time",
        "last_token_time",
        "lora",
        "max_tokens",
        "num_cached_tokens",
        "num_computed",
        "num_output",
        "num_preemptions",
        "num_prompt_tokens",
        "planned",
        "prev_token_time",
        "request_id",
        "status",
        "stop_reason",
        "target_len",
    )

    def __init__(
        self, spec: RequestSpec, scope: int, planned: list[int], stop: str, now: float
    ) -> None:
        super().__init__(list(spec.prompt_token_ids), scope)
        self.request_id = spec.request_id
        self.num_prompt_tokens = len(spec.prompt_token_ids)
        self.max_tokens = spec.max_tokens
        self.lora = spec.lora
        self.planned = planned
        self.target_len = len(planned)
        self.stop_reason = stop  # finish reason when target_len is reached
        self.arrival_time = now
        self.status = RequestStatus.WAITING
        self.num_computed = 0
        self.num_output = 0
        self.num_cached_tokens = -1
        self.num_preemptions = 0
        self.first_scheduled_time = -1.0
        self.first_token_time = -1.0
        self.last_token_time = -1.0
        self.prev_token_time = -1.0
        self.finish_time = -1.0
        self.finish_reason = ""

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]
