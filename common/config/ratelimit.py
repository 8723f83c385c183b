"""RateLimitPolicy: limits on requests and tokens per descriptor over time windows."""

from __future__ import annotations

import re
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from common.config.base import Frozen

TOKEN_TERMS: Final = ("input", "cached_input", "output", "reasoning", "total")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WINDOW_RE: Final = re.compile(r"^(\d+)([smhd])$")
MAX_WINDOW_S: Final = 31 * 86400
_TERM_RE: Final = re.compile(
    r"^\s*(?:(?P<c1>\d+(?:\.\d+)?)\s*\*\s*)?(?P<var>[a-z_]+)(?:\s*\*\s*(?P<c2>\d+(?:\.\d+)?))?\s*$"
)


def parse_window(text: str) -> int | Literal["month"]:
    """`30s`, `1m`, `1h`, `7d` → seconds (1 s to 31 days); `month` → calendar month."""
    if text == "month":
        return "month"
    m = _WINDOW_RE.match(text)
    if not m:
        raise ValueError(f"window {text!r}: use <number><s|m|h|d> (e.g. 1m, 24h) or 'month'")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    if not 1 <= seconds <= MAX_WINDOW_S:
        raise ValueError(f"window {text!r} must be between 1s and 31d")
    return seconds


def parse_token_cost(expr: str) -> dict[str, float]:
    """`input + 4*output` → {"input": 1, "output": 4}; the weights tokens are charged at."""
    weights: dict[str, float] = {}
    for term in expr.split("+"):
        m = _TERM_RE.match(term)
        if not m or m.group("var") not in TOKEN_TERMS or (m.group("c1") and m.group("c2")):
            raise ValueError(
                f"token cost {expr!r}: write a sum of [number*]term with terms from "
                f"{', '.join(TOKEN_TERMS)}, e.g. 'input + 4*output'"
            )
        coef = float(m.group("c1") or m.group("c2") or 1)
        var = m.group("var")
        weights[var] = weights.get(var, 0.0) + coef
    return weights


class Limit(Frozen):
    window: str
    """Length of the window: <n>s|m|h|d from 1s to 31d, or `month` for calendar months."""
    requests: int | None = Field(None, ge=0)
    """Requests admitted per window."""
    tokens: int | None = Field(None, ge=0)
    """Tokens per window, counted with `token_cost`."""
    token_cost: str = "total"
    """What one request's tokens cost: `input`, `output`, `total`, or a weighted sum
    such as `input + 4*output`."""

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        parse_window(v)
        return v

    @field_validator("token_cost")
    @classmethod
    def _cost(cls, v: str) -> str:
        parse_token_cost(v)
        return v

    @model_validator(mode="after")
    def _something(self) -> Limit:
        if self.requests is None and self.tokens is None:
            raise ValueError("a limit needs `requests`, `tokens`, or both")
        return self


DescriptorPart = str
"""`consumer`, `model`, `route`, `header:<name>` or `metadata:<key>`."""


class RateLimitPolicySpec(Frozen):
    descriptor: list[DescriptorPart] = Field(default_factory=lambda: ["consumer"])
    """What one counter is kept per: any combination of consumer, model, route,
    header:<name>, metadata:<key>. An empty list is one global counter."""
    match_models: list[str] = Field(default_factory=list)
    """If set, the policy applies only to these models (exact or glob)."""
    limits: list[Limit] = Field(min_length=1)
    mode: Literal["enforce", "shadow"] = "enforce"
    """`shadow` counts and reports what it would reject, and never rejects."""
    on_unavailable: Literal["fail_open", "fail_closed"] = "fail_open"
    """When the quota service cannot be reached: fail_open falls back to local limits
    (limit ÷ replicas); fail_closed rejects with 429."""
    timezone: str = "UTC"
    """Zone whose midnight starts a calendar month."""
    default_max_output_tokens: int = Field(1024, ge=0)
    """Output tokens reserved at admission when a request sets no max_tokens."""

    @field_validator("descriptor")
    @classmethod
    def _parts(cls, v: list[str]) -> list[str]:
        for part in v:
            kind, _, arg = part.partition(":")
            if kind in ("consumer", "model", "route") and not arg:
                continue
            if kind in ("header", "metadata") and arg:
                continue
            raise ValueError(
                f"descriptor part {part!r}: use consumer, model, route, header:<name> "
                "or metadata:<key>"
            )
        if len(set(v)) != len(v):
            raise ValueError("descriptor parts must be unique")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v
