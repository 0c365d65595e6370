-- The Redis server's clock, which every worker shares (pacing.server_now).
local t = redis.call('TIME')
return tostring(tonumber(t[1]) + tonumber(t[2]) / 1000000)
