"""The configuration contract between control and the tiers (pure; no I/O)."""

from common.config.backend import BackendSchema, BackendSpec
from common.config.base import REVEAL, SECRET_MASK, Frozen, Name, Secret
from common.config.consumer import ApiKey, ConsumerSpec, hash_api_key, new_api_key
from common.config.pool import PluginConfig, PoolSpec, SchedulerProfile
from common.config.ratelimit import RateLimitPolicySpec, parse_token_cost, parse_window
from common.config.resources import (
    KINDS,
    PLURALS,
    Backend,
    Consumer,
    Pool,
    RateLimitPolicy,
    Resource,
    Route,
    dump_documents,
    kind_from_word,
    parse_documents,
    parse_resource,
    to_public,
    to_stored,
    with_revision,
)
from common.config.route import RouteSpec
from common.config.scheduling import NAMED_PROFILES, PLUGIN_TYPES, PluginKind, PluginSpec
from common.config.snapshot import (
    SCHEMA_VERSION,
    Tier1Snapshot,
    Tier2Snapshot,
    snapshot_from_wire,
    snapshot_to_wire,
)
from common.config.validate import ConfigSet, validate_config

__all__ = [
    "KINDS",
    "NAMED_PROFILES",
    "PLUGIN_TYPES",
    "PLURALS",
    "REVEAL",
    "SCHEMA_VERSION",
    "SECRET_MASK",
    "ApiKey",
    "Backend",
    "BackendSchema",
    "BackendSpec",
    "ConfigSet",
    "Consumer",
    "ConsumerSpec",
    "Frozen",
    "Name",
    "PluginConfig",
    "PluginKind",
    "PluginSpec",
    "Pool",
    "PoolSpec",
    "RateLimitPolicy",
    "RateLimitPolicySpec",
    "Resource",
    "Route",
    "RouteSpec",
    "SchedulerProfile",
    "Secret",
    "Tier1Snapshot",
    "Tier2Snapshot",
    "dump_documents",
    "hash_api_key",
    "kind_from_word",
    "new_api_key",
    "parse_documents",
    "parse_resource",
    "parse_token_cost",
    "parse_window",
    "snapshot_from_wire",
    "snapshot_to_wire",
    "to_public",
    "to_stored",
    "validate_config",
    "with_revision",
]
