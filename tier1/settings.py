"""Process settings of tier1 (flags and environment), separate from pushed config."""

from __future__ import annotations

from dataclasses import dataclass

from tier1.auth.jwt import JwtSettings


@dataclass(frozen=True, slots=True)
class Tier1Settings:
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body accepted (413 beyond); agent contexts are large."""
    log_bodies: bool = False
    """Put request bodies in the access log (debugging only: prompts are private)."""
    upstream_connections: int = 1000
    """Open connections to all upstreams together."""
    access_log: str = "logging"
    """Where access-log lines go: `logging` (the strata.access logger), `stderr` or
    `stdout` (buffered, flushed every 0.25 s: the fast choice), a file path, or `off`."""
    jwt: JwtSettings | None = None
    """When set, bearer tokens that are JWTs are verified and name the consumer."""
    ratelimit: tuple[str, ...] = ()
    """Quota replicas (host:port); when empty, the set control publishes is used."""
    quota_holders: int = 1
    """tier1 processes assumed to share a limit until the quota service has said how
    many there are (fail-open local limits are limit ÷ this)."""
    quota_sync_interval_s: float = 0.1
    quota_lease_s: float = 1.0
