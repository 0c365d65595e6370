-- A sender's next turn for one send, under its caps and its rate (caps.book): {'slot', time}
-- with the send counted at that time and the sender's next turn one interval on, or
-- {'wait', seconds, 'cap' or 'busy'} (nothing booked) when the turn would be more than
-- `within` seconds off (the sender's backlog, or its caps). With `later` 1 the turn is the
-- first with room, however far off. Every send is counted, capped or not, for `keep` seconds
-- (what `hotline channels list` shows as sent this hour and today).
-- keys: sent, next_slot
-- args: member, caps:json, gap, later, within, keep
-- uses: gateway/pacing.clock.lib, gateway/caps.room.lib
local now = server_now()
gap = tonumber(gap)
keep = tonumber(keep)
local slot = now
if gap > 0 then
    slot = math.max(now, tonumber(redis.call('GET', next_slot) or '0'))
end
within = tonumber(within)
if later ~= '1' and slot - now > within then
    return {'wait', tostring(slot - now), 'busy'}
end
redis.call('ZREMRANGEBYSCORE', sent, '-inf', '(' .. tostring(now - keep))
if #caps > 0 then
    local wait = room_wait(sent, caps, slot)
    if wait > 0 and later ~= '1' and slot + wait - now > within then
        return {'wait', tostring(slot - now + wait), 'cap'}
    end
    if wait > 0 then
        -- the send that filled the window has left it by then (its bound is exclusive)
        slot = slot + wait + 0.001
    end
end
redis.call('ZADD', sent, slot, member)
redis.call('PEXPIRE', sent, math.ceil((slot - now + keep) * 1000) + 60000)
if gap > 0 then
    redis.call('SET', next_slot, tostring(slot + gap), 'PX', math.ceil((slot + gap - now) * 1000) + 60000)
end
return {'slot', tostring(slot)}
