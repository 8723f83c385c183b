"""RateLimitPolicy resources compiled for the hot path (pure).

A request is subject to the policies its route and its consumer name (the union, in
that order). Each limit of a policy becomes up to two counters per descriptor value,
one for requests and one for tokens. A descriptor part that the request lacks (no such
header, no such consumer metadata) means the policy does not apply to it, as with
Envoy's rate-limit descriptors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from common.config import Consumer, RateLimitPolicy
from common.config.ratelimit import parse_token_cost, parse_window

PERSIST_FROM_S = 3600
"""Windows at least this long are checkpointed by the quota service."""


@dataclass(frozen=True, slots=True)
class CompiledLimit:
    policy: str
    index: int
    window: int | Literal["month"]
    requests: int | None
    tokens: int | None
    persist: bool
    coef: tuple[float, float, float, float]
    """The weights folded onto (input, output, cached_input, reasoning), `total`
    counting as input + output: a request's cost is one dot product."""


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    name: str
    parts: tuple[str, ...]
    models: tuple[str, ...]
    limits: tuple[CompiledLimit, ...]
    shadow: bool
    fail_closed: bool
    timezone: str
    default_max_output_tokens: int

    def applies_to(self, model: str) -> bool:
        return not self.models or any(m == model or fnmatchcase(model, m) for m in self.models)

    def descriptor(
        self, consumer: Consumer, model: str, route: str, headers: Mapping[str, str]
    ) -> str | None:
        """The counter's descriptor value, or None when a part is missing."""
        values = []
        for part in self.parts:
            if part == "consumer":
                values.append(consumer.name)
            elif part == "model":
                values.append(model)
            elif part == "route":
                values.append(route)
            else:
                kind, _, arg = part.partition(":")
                got = (
                    headers.get(arg.lower())
                    if kind == "header"
                    else consumer.spec.metadata.get(arg)
                )
                if got is None:
                    return None
                values.append(got)
        return "\x1f".join(values)


def compile_policy(p: RateLimitPolicy) -> CompiledPolicy:
    spec = p.spec
    limits = []
    for i, lim in enumerate(spec.limits):
        window = parse_window(lim.window)
        limits.append(
            CompiledLimit(
                policy=p.name,
                index=i,
                window=window,
                requests=lim.requests,
                tokens=lim.tokens,
                persist=window == "month" or window >= PERSIST_FROM_S,
                coef=fold_weights(parse_token_cost(lim.token_cost)),
            )
        )
    return CompiledPolicy(
        name=p.name,
        parts=tuple(spec.descriptor),
        models=tuple(spec.match_models),
        limits=tuple(limits),
        shadow=spec.mode == "shadow",
        fail_closed=spec.on_unavailable == "fail_closed",
        timezone=spec.timezone,
        default_max_output_tokens=spec.default_max_output_tokens,
    )


def compile_policies(policies: Sequence[RateLimitPolicy]) -> dict[str, CompiledPolicy]:
    return {p.name: compile_policy(p) for p in policies}


def fold_weights(weights: Mapping[str, float]) -> tuple[float, float, float, float]:
    total = weights.get("total", 0.0)
    return (
        weights.get("input", 0.0) + total,
        weights.get("output", 0.0) + total,
        weights.get("cached_input", 0.0),
        weights.get("reasoning", 0.0),
    )


def cost(
    coef: tuple[float, float, float, float],
    input_tokens: float,
    output_tokens: float,
    cached_input: float = 0.0,
    reasoning: float = 0.0,
) -> float:
    a, b, c, d = coef
    return a * input_tokens + b * output_tokens + c * cached_input + d * reasoning


def estimate_input_tokens(body_bytes: int) -> int:
    """Prompt tokens estimated from the request body's size: about 4 bytes per token,
    rounded up. Counting JSON syntax and field names makes it an over-estimate for
    text, which is the safe side: the difference is refunded when the request ends."""
    return body_bytes // 4 + 1
