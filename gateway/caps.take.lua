-- One send through a sender now, if it has room under every cap over the windows ending now
-- (caps.take): '0' and the send counted, else the seconds until the first window has room.
-- keys: sent
-- args: member, caps:json
-- uses: gateway/pacing.clock.lib, gateway/caps.room.lib
local now = server_now()
local longest = forget_old(sent, caps, now)
if redis.call('ZSCORE', sent, member) then
    return '0'  -- a retry of a counted send is not counted twice
end
local wait = room_wait(sent, caps, now)
if wait > 0 then
    return tostring(wait)
end
redis.call('ZADD', sent, now, member)
redis.call('PEXPIRE', sent, math.ceil(longest * 1000) + 60000)
return '0'
