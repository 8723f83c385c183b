"""The quota service (`strata ratelimit`): owns the global counters of rate limits and
token budgets, leases shares of them to tier1 processes, checkpoints long windows to
the store and registers itself so control can publish the replica set."""
