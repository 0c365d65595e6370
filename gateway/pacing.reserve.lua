-- The sender's next free slot (server time), one interval after the slot before (pacing.reserve).
-- keys: next_slot
-- args: gap
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
gap = tonumber(gap)
local nxt = tonumber(redis.call('GET', next_slot) or '0')
local slot = math.max(now, nxt)
redis.call('SET', next_slot, tostring(slot + gap), 'PX', math.ceil((slot + gap - now) * 1000) + 60000)
return tostring(slot)
