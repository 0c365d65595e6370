-- A sender's turn for one send, under its caps and its rate (caps.book): {'slot', time} with
-- the send counted at that time, or {'wait', seconds, 'cap' or 'busy'} (nothing booked) when
-- the turn would be more than `within` seconds off (the sender's backlog, or its caps). With
-- `later` 1 the turn is the first with room, however far off. Every send is counted, capped
-- or not, for `keep` seconds (what `hotline channels list` shows as sent this hour and today).
--
-- Two lanes share the turns. A notice (`lane` 'bulk') books at the end of the line, one
-- interval after the last turn, and leaves each cap's `reserve` to the other lane. Any other
-- text ('urgent': an offer, a reply, a code) goes ahead of the notices: into the first free
-- interval from now if its caps allow a send there, else onto the earliest notice's turn
-- still ahead, that notice booked again at the end of the line (its job finds its turn moved
-- when it claims it: pacing.claim). Either way no interval is shorter than `gap` and no
-- window holds more than its cap.
-- keys: sent, next_slot, bulk
-- args: member, caps:json, gap, later, within, keep, lane
-- uses: gateway/pacing.clock.lib, gateway/caps.room.lib
local now = server_now()
gap = tonumber(gap)
keep = tonumber(keep)
within = tonumber(within)
redis.call('ZREMRANGEBYSCORE', sent, '-inf', '(' .. t(now - keep))
redis.call('ZREMRANGEBYSCORE', bulk, '-inf', '(' .. t(now))  -- past turns: not to be taken

-- A key's time to live made at least `ms` (never shortened: it holds turns booked further on).
local function extend(key, ms)
    if redis.call('PTTL', key) < ms then
        redis.call('PEXPIRE', key, ms)
    end
end

local function counted(at, member_, is_bulk)
    redis.call('ZADD', sent, t(at), member_)
    extend(sent, math.ceil((at - now + keep) * 1000) + 60000)
    if is_bulk then
        redis.call('ZADD', bulk, t(at), member_)
        extend(bulk, math.ceil((at - now) * 1000) + 60000)
    end
end

-- The end of the line: one interval after every booked turn, with room under `limits`.
local function last_turn(limits)
    local slot = now
    if gap > 0 then
        slot = math.max(now, tonumber(redis.call('GET', next_slot) or '0'))
    end
    local wait = 0
    if #limits > 0 then
        wait = room_wait(sent, limits, slot)
        if wait > 0 then
            wait = wait + 0.001  -- the send that filled the window has left it by then
        end
    end
    return slot, wait
end

local function advance(slot)
    if gap > 0 then
        local after = math.max(slot + gap, tonumber(redis.call('GET', next_slot) or '0'))
        redis.call('SET', next_slot, t(after), 'PX', math.ceil((after - now) * 1000) + 60000)
    end
end

local function at_end(limits, is_bulk)
    local slot, wait = last_turn(limits)
    if later ~= '1' and slot + wait - now > within then
        local why = 'busy'
        if wait > 0 then why = 'cap' end
        return {'wait', t(slot + wait - now), why}
    end
    slot = slot + wait
    counted(slot, member, is_bulk)
    advance(slot)
    return {'slot', t(slot)}
end

if lane == 'bulk' then
    local limits = {}
    for i, cap in ipairs(caps) do
        limits[i] = {cap[1], cap[2] - cap[3]}
    end
    return at_end(limits, true)
end

-- Whether one more send at `at` keeps every window that holds it within its cap.
local function fits(at)
    for _, cap in ipairs(caps) do
        local window, most = cap[1], cap[2]
        if redis.call('ZCOUNT', sent, '(' .. t(at - window), t(at)) + 1 > most then
            return false
        end
        local ahead = redis.call('ZRANGEBYSCORE', sent, '(' .. t(at), '(' .. t(at + window), 'WITHSCORES')
        for i = 2, #ahead, 2 do
            local s = tonumber(ahead[i])
            if redis.call('ZCOUNT', sent, '(' .. t(s - window), t(s)) + 1 > most then
                return false
            end
        end
    end
    return true
end

-- The first free interval from now: after the last turn at or before now, before the next.
local before = redis.call('ZREVRANGEBYSCORE', sent, t(now), '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
local free = now
if #before > 0 then
    free = math.max(now, tonumber(before[2]) + gap)
end
local next_turn = redis.call('ZRANGEBYSCORE', sent, '(' .. t(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if (#next_turn == 0 or free + gap <= tonumber(next_turn[2])) and free - now <= within and fits(free) then
    counted(free, member, false)
    if #next_turn == 0 then advance(free) end
    return {'slot', t(free)}
end

-- Else the earliest notice's turn ahead: the same turns counted, so the caps hold as they were.
local taken = redis.call('ZRANGEBYSCORE', bulk, '(' .. t(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #taken > 0 and (later == '1' or tonumber(taken[2]) - now <= within) then
    local slot = tonumber(taken[2])
    redis.call('ZREM', sent, taken[1])
    redis.call('ZREM', bulk, taken[1])
    counted(slot, member, false)
    local limits = {}
    for i, cap in ipairs(caps) do
        limits[i] = {cap[1], cap[2] - cap[3]}
    end
    local moved, wait = last_turn(limits)
    moved = moved + wait
    counted(moved, taken[1], true)
    advance(moved)
    return {'slot', t(slot)}
end
return at_end(caps, false)
