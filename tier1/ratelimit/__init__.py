"""Global rate limits in tier1: policies → asks (pure), local leases, the quota client."""
