-- One send through a sender, if it has room under every cap over the windows ending now
-- (caps.take): '0' and the send counted, else the seconds until the first window has room.
-- keys: sent
-- args: member, caps:json
-- uses: gateway/pacing.clock.lib
local now = server_now()
local longest = 0
for _, cap in ipairs(caps) do
    longest = math.max(longest, cap[1])
end
redis.call('ZREMRANGEBYSCORE', sent, '-inf', '(' .. tostring(now - longest))
local wait = 0
for _, cap in ipairs(caps) do
    local window, most = cap[1], cap[2]
    local count = redis.call('ZCOUNT', sent, now - window, '+inf')
    if count >= most then
        -- room comes when the send that filled the window leaves it
        local filler = redis.call('ZRANGEBYSCORE', sent, now - window, '+inf', 'WITHSCORES',
                                  'LIMIT', count - most, 1)
        wait = math.max(wait, tonumber(filler[2]) + window - now)
    end
end
if wait > 0 then
    return tostring(wait)
end
-- a member seen before (a retry of a counted send) is not counted twice
redis.call('ZADD', sent, 'NX', now, member)
redis.call('PEXPIRE', sent, math.ceil(longest * 1000) + 60000)
return '0'
