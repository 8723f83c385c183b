"""Process settings of a tier2 replica (flags), separate from the pushed Pool config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tier2Settings:
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body accepted (413 beyond); agent contexts are large."""
    upstream_connections: int = 1000
    """Open connections to all model servers together."""
    connect_timeout_s: float = 2.0
    """Seconds to open a connection to a pod before trying the next-best one."""
    stream_idle_s: float = 300.0
    """Seconds a pod may stay silent (no byte) before the request is cut; a long prefill
    under load can take minutes, so this is generous."""
    scrape_timeout_s: float = 1.0
    """Per-scrape timeout of /metrics; a slow pod must not stall its own freshness."""
    scrape_jitter: float = 0.1
    """Each scrape waits interval x (1 ± jitter), so pods are not scraped in lockstep."""
    unhealthy_after_failures: int = 2
    """Consecutive failed scrapes after which an endpoint is left out of picks."""
    max_recorded_text_chars: int = 64 * 1024
    """Generated text kept per request for the prefix index (vLLM caches the answer's
    blocks too); bounded so a long answer cannot grow memory without limit."""
    tick_s: float = 0.05
    """How often queued requests are re-checked against capacity and their deadline, and
    pushed config is applied to discovery and the poller."""
    disconnect_check_s: float = 0.25
    """How often a request waiting for its pod checks whether its client went away."""
