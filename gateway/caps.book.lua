-- A sender's next turn for one send, under its caps and its rate (caps.book): {'slot', time}
-- with the send counted at that time and the sender's next turn one interval on, or
-- {'wait', seconds} (nothing booked) when no cap has room by then. With `later` 1 the turn
-- is the first with room, however far off.
-- keys: sent, next_slot
-- args: member, caps:json, gap, later
-- uses: gateway/pacing.clock.lib, gateway/caps.room.lib
local now = server_now()
gap = tonumber(gap)
local slot = now
if gap > 0 then
    slot = math.max(now, tonumber(redis.call('GET', next_slot) or '0'))
end
if #caps > 0 then
    local longest = forget_old(sent, caps, now)
    local wait = room_wait(sent, caps, slot)
    if wait > 0 and later ~= '1' then
        return {'wait', tostring(slot - now + wait)}
    end
    if wait > 0 then
        -- the send that filled the window has left it by then (its bound is exclusive)
        slot = slot + wait + 0.001
    end
    redis.call('ZADD', sent, slot, member)
    redis.call('PEXPIRE', sent, math.ceil((slot - now + longest) * 1000) + 60000)
end
if gap > 0 then
    redis.call('SET', next_slot, tostring(slot + gap), 'PX', math.ceil((slot + gap - now) * 1000) + 60000)
end
return {'slot', tostring(slot)}
