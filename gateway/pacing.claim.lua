-- A send at or after its slot, with room in the sender's window: '0' and counted, else the
-- seconds to wait (pacing.claim). The window: at most `most` sends in any `span` seconds (the
-- rate, with its margin), counted over the sender's latest sends in `recent`; so a sender
-- whose sends fell behind their turns (a worker that stalled) catches up in a burst that
-- still never puts more than its rate into any second. {'moved', turn} when the send's
-- booked turn in `sent` (its caps' count) is no longer `slot`: an offer took it
-- (caps.book.lua). Checked in the same step as the send is let through, so a turn is never
-- both taken and sent.
-- keys: recent, sent
-- args: most, span, slot, member
-- uses: gateway/pacing.clock.lib
local now = server_now()
most = tonumber(most)
span = tonumber(span)
slot = tonumber(slot)
if member ~= '' then
    local booked = redis.call('ZSCORE', sent, member)
    if booked and math.abs(tonumber(booked) - slot) > 0.0005 then
        return {'moved', booked}
    end
end
if most <= 0 then
    return '0'
end
local earliest = slot
local oldest = redis.call('LINDEX', recent, most - 1)
if oldest then
    earliest = math.max(earliest, tonumber(oldest) + span)
end
if now + 0.0005 >= earliest then
    redis.call('LPUSH', recent, string.format('%.6f', now))
    redis.call('LTRIM', recent, 0, most - 1)
    redis.call('PEXPIRE', recent, math.ceil(span * 1000) + 60000)
    return '0'
end
return tostring(earliest - now)
