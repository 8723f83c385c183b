"""Resources of the rate-limit benchmark, the snapshot files tier1 starts from, and the
sizing of the accuracy run's limits (pure, apart from `write_state`).

tier1 reads its last good snapshot from `--state-dir` before it reaches control, and
keeps serving it while control does not answer; the benchmark writes that file itself
(as the e2e tests do), so no control plane or etcd has to run next to the processes
being measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.config import ConfigSet, hash_api_key, parse_resource, snapshot_to_wire
from common.config.ratelimit import MAX_WINDOW_S, parse_token_cost
from common.configsync import persist
from control.compile import compile_tier1
from tier1.ratelimit.policies import cost, fold_weights

UPSTREAM_KEY = "sk-bench-rl-upstream"
CLIENT_KEY = "sk-bench-rl-client-0123456789abcdef"
CALIB_KEY = "sk-bench-rl-calib-0123456789abcdef"
FREE_MODEL = "m-free"
LIMITED_MODEL = "m-limited"
HOT_POLICY = "hot"
ACC_POLICY = "acc"
TOKEN_COST = "input + 4*output"
USAGE = {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40}
"""What the fake upstream reports for every answer."""
HUGE = 10**12
"""A limit nothing reaches."""


def usage_cost(usage: dict[str, int] = USAGE, expr: str = TOKEN_COST) -> float:
    """What one answer costs under `expr` (input = prompt, output = completion)."""
    return cost(
        fold_weights(parse_token_cost(expr)),
        usage.get("prompt_tokens", 0),
        usage.get("completion_tokens", 0),
        usage.get("cached_tokens", 0),
        usage.get("reasoning_tokens", 0),
    )


def stable_window(now: float, duration_s: float, margin_s: float = 120.0) -> str:
    """The shortest window of whole hours whose epoch-aligned current instance does not
    roll over between `now` and `now + duration_s + margin_s` (a "1h" window started at
    :59 would)."""
    for hours in range(1, MAX_WINDOW_S // 3600 + 1):
        length = hours * 3600
        if (now // length + 1) * length - now > duration_s + margin_s:
            return f"{hours}h"
    raise ValueError(f"no window up to 31 days covers a {duration_s:.0f} s run")


@dataclass(frozen=True, slots=True)
class Sizing:
    """Limits of the accuracy run: both run out after about `fraction` of the run."""

    requests: int
    tokens: int
    cost_per_request: float
    rate: float
    """Admitted requests/s measured before the run (calibration)."""


def size_limits(
    rate: float, duration_s: float, *, fraction: float = 2 / 3, cost: float | None = None
) -> Sizing:
    """A requests limit of `fraction` of what `rate` admits in `duration_s`, and a
    tokens limit worth exactly that many requests at the fake's fixed usage, so both
    budgets are spent at about the same moment and both utilisations mean something."""
    if rate <= 0 or duration_s <= 0 or not 0 < fraction <= 1:
        raise ValueError("rate and duration must be > 0, fraction in (0, 1]")
    per = usage_cost() if cost is None else cost
    requests = max(1, math.floor(rate * duration_s * fraction))
    return Sizing(requests, math.ceil(requests * per), per, rate)


# -- resources --------------------------------------------------------------------------


def consumer(name: str, key: str, policies: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "kind": "Consumer",
        "name": name,
        "spec": {
            "keys": [{"id": f"k-{name}", "hash": hash_api_key(key)}],
            "rate_limit_policies": list(policies),
        },
    }


def backend(url_v1: str) -> dict[str, Any]:
    return {
        "kind": "Backend",
        "name": "fake",
        "spec": {
            "schema": "openai",
            "base_url": url_v1,
            "auth": {"type": "api_key", "key": UPSTREAM_KEY},
        },
    }


def route(name: str, model: str, policies: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "kind": "Route",
        "name": name,
        "spec": {
            "match": {"models": [model]},
            "backends": [{"name": "fake"}],
            "rate_limit_policies": list(policies),
        },
    }


def policy(name: str, window: str, requests: int, tokens: int) -> dict[str, Any]:
    limit = {"window": window, "requests": requests, "tokens": tokens, "token_cost": TOKEN_COST}
    return {
        "kind": "RateLimitPolicy",
        "name": name,
        "spec": {"descriptor": ["consumer"], "limits": [limit]},
    }


def hotpath_docs(upstream_v1: str) -> list[dict[str, Any]]:
    """`m-free` without a policy, `m-limited` with limits nothing reaches (1 min window:
    the service keeps no checkpoint for it, as with most request-rate limits)."""
    return [
        backend(upstream_v1),
        route("free", FREE_MODEL),
        route("limited", LIMITED_MODEL, [HOT_POLICY]),
        policy(HOT_POLICY, "1m", HUGE, HUGE),
        consumer("bench", CLIENT_KEY),
    ]


def accuracy_docs(upstream_v1: str, window: str, requests: int, tokens: int) -> list[Any]:
    """One route under one policy keyed by consumer: the run uses consumer `bench`
    alone (one key); calibration uses `calib`, a key of its own."""
    return [
        backend(upstream_v1),
        route("acc", LIMITED_MODEL, [ACC_POLICY]),
        policy(ACC_POLICY, window, requests, tokens),
        consumer("bench", CLIENT_KEY),
        consumer("calib", CALIB_KEY),
    ]


def tier1_wire(docs: Sequence[dict[str, Any]], revision: int) -> dict[str, Any]:
    cfg = ConfigSet.of(parse_resource(d) for d in docs)
    return snapshot_to_wire(compile_tier1(cfg, revision))


def write_state(state_dir: Path, node_ids: Sequence[str], wire: dict[str, Any]) -> None:
    """The snapshot file of each tier1 process (`tier1-<node id>.snapshot`)."""
    for node in node_ids:
        persist.save(state_dir / f"tier1-{node}.snapshot", wire)
