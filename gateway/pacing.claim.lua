-- A send at or after its slot and one interval after the sender's last: '0' and counted,
-- else the seconds to wait (pacing.claim).
-- keys: last_send
-- args: gap, slot
-- uses: gateway/pacing.clock.lib
local now = server_now()
gap = tonumber(gap)
slot = tonumber(slot)
local last = tonumber(redis.call('GET', last_send) or '0')
local earliest = math.max(slot, last + gap)
if now + 0.0005 >= earliest then
    redis.call('SET', last_send, tostring(now), 'PX', math.ceil(gap * 1000) + 60000)
    return '0'
end
return tostring(earliest - now)
