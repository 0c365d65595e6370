-- The sender's next free slot (server time), one interval after the slot before (pacing.reserve).
-- keys: next_slot
-- args: gap
-- uses: gateway/pacing.clock.lib
local now = server_now()
gap = tonumber(gap)
local nxt = tonumber(redis.call('GET', next_slot) or '0')
local slot = math.max(now, nxt)
redis.call('SET', next_slot, tostring(slot + gap), 'PX', math.ceil((slot + gap - now) * 1000) + 60000)
return tostring(slot)
