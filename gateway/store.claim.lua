-- Claim a purpose once (store.claim).
-- keys: key
-- args: field, now, stale_before, ttl
-- uses: gateway/store.claim.lib
return claim(key, field, now, stale_before, ttl)
