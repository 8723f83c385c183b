"""Global rate limits: the arithmetic and wire shapes shared by tier1 and the quota
service (`strata ratelimit`). Pure: no I/O here."""
