-- Library: the Redis server's clock, in seconds, which every worker shares.
local function server_now()
    local t = redis.call('TIME')
    return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
