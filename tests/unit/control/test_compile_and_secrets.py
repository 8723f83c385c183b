"""compile.py and secrets.py: pure functions, table tests."""

from __future__ import annotations

import pytest

from common.config import ConfigSet, parse_resource, with_revision
from common.errors import ValidationFailed
from control.compile import compile_tier1, compile_tier2
from control.secrets import restore_masked


def _cfg(pool_rev: int = 7) -> ConfigSet:
    pool = parse_resource(
        {
            "kind": "Pool",
            "name": "p",
            "spec": {
                "model": "m",
                "endpoints": {"type": "static", "addresses": ["a:1"]},
                "tier2": ["t:2"],
            },
        }
    )
    b = parse_resource({"kind": "Backend", "name": "b", "spec": {"schema": "pool", "pool": "p"}})
    r = parse_resource(
        {
            "kind": "Route",
            "name": "r",
            "spec": {"match": {"models": ["m"]}, "backends": [{"name": "b"}]},
        }
    )
    return ConfigSet.of([with_revision(pool, pool_rev), with_revision(b, 3), with_revision(r, 4)])


def test_checksum_covers_content_not_revisions() -> None:
    a = compile_tier1(_cfg(7), 10)
    b = compile_tier1(_cfg(9), 11)
    assert a.checksum == b.checksum and a.revision == 10 and b.revision == 11
    assert all(x.revision is None for x in a.routes)


def test_tier2_snapshot_per_pool_carries_pool_revision() -> None:
    snaps = compile_tier2(_cfg(7))
    assert list(snaps) == ["p"] and snaps["p"].revision == 7 and snaps["p"].pool.name == "p"


def test_inconsistent_set_does_not_compile() -> None:
    cfg = _cfg().removed("Backend", "b")
    with pytest.raises(ValidationFailed, match="does not exist"):
        compile_tier1(cfg, 1)


def test_restore_masked_keeps_stored_secret() -> None:
    stored = {"spec": {"auth": {"type": "api_key", "key": "sk-old"}, "timeouts": {"connect_s": 5}}}
    incoming = {
        "spec": {"auth": {"type": "api_key", "key": {"set": True}}, "timeouts": {"connect_s": 9}}
    }
    assert restore_masked(incoming, stored) == {
        "spec": {"auth": {"type": "api_key", "key": "sk-old"}, "timeouts": {"connect_s": 9}}
    }


def test_restore_masked_without_stored_value_names_the_path() -> None:
    with pytest.raises(ValidationFailed) as e:
        restore_masked({"spec": {"auth": {"key": {"set": True}}}}, None)
    assert e.value.errors[0].path == "spec.auth.key"
