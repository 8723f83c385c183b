"""Scheduler profiles from config: the named profiles, validation by control, assembly."""

from __future__ import annotations

import random
from typing import Any

import pytest

from common.config import PLUGIN_TYPES, Pool, PoolSpec
from common.config.resources import parse_resource
from common.config.scheduling import NAMED_PROFILES, PluginKind, PluginSpec, profile_errors
from common.errors import ConfigError, ValidationFailed
from tier2.scheduling.framework import PluginContext
from tier2.scheduling.plugins.filters.healthy import HealthyFilter
from tier2.scheduling.plugins.pickers.max_score import MaxScorePicker
from tier2.scheduling.plugins.pickers.strata import StrataPicker
from tier2.scheduling.plugins.scorers.kv_cache import KvCacheScorer
from tier2.scheduling.plugins.scorers.prefix_cache import PrefixCacheScorer
from tier2.scheduling.plugins.scorers.queue import QueueScorer
from tier2.scheduling.registry import FILTERS, PICKERS, SCORERS, build_profile


def pool_doc(scheduler: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "m",
        "endpoints": {"type": "static", "addresses": ["10.0.0.1:8000"]},
        "tier2": ["10.0.0.9:8180"],
    }
    if scheduler is not None:
        spec["scheduler"] = scheduler
    return {"kind": "Pool", "name": "p", "spec": spec}


def ctx() -> PluginContext:
    return PluginContext(random.Random(0))


def test_registry_covers_every_configurable_type() -> None:
    runnable = {name for name, t in PLUGIN_TYPES.items() if t.kind is not PluginKind.PRODUCER}
    assert runnable == set(FILTERS) | set(SCORERS) | set(PICKERS)
    for table, kind in (
        (FILTERS, PluginKind.FILTER),
        (SCORERS, PluginKind.SCORER),
        (PICKERS, PluginKind.PICKER),
    ):
        assert {PLUGIN_TYPES[name].kind for name in table} == {kind}


def test_strata_is_the_default_profile() -> None:
    pool = parse_resource(pool_doc())
    assert isinstance(pool, Pool)
    assert pool.spec.scheduler.name == "strata"
    assembly = build_profile("strata", pool.spec.scheduler.specs(), ctx())
    assert isinstance(assembly.profile.picker, StrataPicker)
    assert assembly.prefix is not None and assembly.prefix.record_response


def test_gie_default_is_queue_2_kv_2_prefix_3_max_score() -> None:
    a = build_profile("gie-default", NAMED_PROFILES["gie-default"], ctx())
    got = [(type(s), w) for s, w in a.profile.scorers]
    assert got == [(QueueScorer, 2.0), (KvCacheScorer, 2.0), (PrefixCacheScorer, 3.0)]
    assert isinstance(a.profile.picker, MaxScorePicker)
    assert a.profile.picker.tie_epsilon == 0.0
    assert any(
        isinstance(f, HealthyFilter) and f.max_age_s is None for f in a.profile.filters
    )  # GIE: stale pods stay
    assert a.prefix is not None
    assert (a.prefix.block_chars, a.prefix.max_blocks, a.prefix.prompt_format) == (
        None,
        256,
        "json",
    )
    assert (a.prefix.record_response, a.prefix.capacity) == (False, "full")


def test_custom_plugin_list_replaces_the_named_one() -> None:
    sched = {
        "name": "mine",
        "plugins": [
            {"type": "healthy-filter", "parameters": {"max_age_s": 5}},
            {"type": "inflight-load-scorer", "weight": 4},
            {"type": "weighted-random-picker"},
        ],
    }
    pool = parse_resource(pool_doc(sched))
    assert isinstance(pool, Pool)
    a = build_profile("mine", pool.spec.scheduler.specs(), ctx())
    assert [w for _, w in a.profile.scorers] == [4.0]
    assert a.prefix is None  # no prefix-index: requests are not hashed


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ({"name": "nope"}, "unknown scheduler profile 'nope'"),
        (
            {"plugins": [{"type": "magic-scorer"}, {"type": "max-score-picker"}]},
            "plugins[0] (magic-scorer): unknown plugin type",
        ),
        ({"plugins": [{"type": "queue-scorer"}]}, "exactly one picker, found 0"),
        (
            {"plugins": [{"type": "max-score-picker"}, {"type": "strata-picker"}]},
            "exactly one picker, found 2",
        ),
        (
            {"plugins": [{"type": "strata-picker", "parameters": {"theta": 2}}]},
            "plugins[0] (strata-picker): parameters.theta: Input should be less than or equal to 1",
        ),
        (
            {
                "plugins": [
                    {"type": "queue-scorer", "parameters": {"x": 1}},
                    {"type": "max-score-picker"},
                ]
            },
            "plugins[0] (queue-scorer): parameters.x: Extra inputs are not permitted",
        ),
        (
            {"plugins": [{"type": "ledger"}, {"type": "ledger"}, {"type": "max-score-picker"}]},
            "ledger appears 2 times",
        ),
        ({"plugins": [{"type": "max-score-picker", "weight": -1}]}, "greater than or equal to 0"),
    ],
)
def test_control_rejects_bad_profiles_with_a_clear_message(
    scheduler: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_resource(pool_doc(scheduler))
    assert message in str(err.value)
    assert any(e.path.startswith("spec.scheduler") for e in err.value.errors)


def test_tier2_refuses_what_control_would() -> None:
    with pytest.raises(ConfigError, match="exactly one picker"):
        build_profile("x", [PluginSpec("queue-scorer")], ctx())


def test_named_profiles_are_valid() -> None:
    for name, specs in NAMED_PROFILES.items():
        assert profile_errors(specs) == [], name
        PoolSpec.model_validate(pool_doc({"name": name})["spec"])
