-- The Redis server's clock, which every worker shares (pacing.server_now).
-- uses: gateway/pacing.clock.lib
return tostring(server_now())
