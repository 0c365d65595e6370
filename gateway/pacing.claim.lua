-- A send at or after its slot and one interval after the sender's last: '0' and counted,
-- else the seconds to wait (pacing.claim); {'moved', turn} when the send's booked turn in
-- `sent` (its caps' count) is no longer `slot`: an offer took it (caps.book.lua). Checked in
-- the same step as the send is let through, so a turn is never both taken and sent.
-- keys: last_send, sent
-- args: gap, slot, member
-- uses: gateway/pacing.clock.lib
local now = server_now()
gap = tonumber(gap)
slot = tonumber(slot)
if member ~= '' then
    local booked = redis.call('ZSCORE', sent, member)
    if booked and math.abs(tonumber(booked) - slot) > 0.0005 then
        return {'moved', booked}
    end
end
if gap <= 0 then
    return '0'
end
local last = tonumber(redis.call('GET', last_send) or '0')
local earliest = math.max(slot, last + gap)
if now + 0.0005 >= earliest then
    redis.call('SET', last_send, tostring(now), 'PX', math.ceil(gap * 1000) + 60000)
    return '0'
end
return tostring(earliest - now)
