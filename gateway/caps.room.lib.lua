-- Library: how long until a sender whose counted sends are `sent` has room for one more at
-- time `at` under every cap ({window, most} pairs): 0 when it has room then. Counted sends are
-- never later than `at` (a sender's slots only grow), so the one window to look at ends at `at`.
-- A time as text to the microsecond, for scores and bounds alike (tostring keeps 14 digits,
-- a tenth of a millisecond, and would round a bound past the score it should include).
local function t(x)
    return string.format('%.6f', x)
end

local function room_wait(sent, caps, at)
    local wait = 0
    for _, cap in ipairs(caps) do
        local window, most = cap[1], cap[2]
        local from = '(' .. t(at - window)
        local count = redis.call('ZCOUNT', sent, from, '+inf')
        if count >= most then
            -- room comes when the send that filled the window leaves it
            local filler = redis.call('ZRANGEBYSCORE', sent, from, '+inf', 'WITHSCORES',
                                      'LIMIT', count - most, 1)
            wait = math.max(wait, tonumber(filler[2]) + window - at)
        end
    end
    return wait
end
