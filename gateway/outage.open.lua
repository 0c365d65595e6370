-- Release what is parked, and with `end_outage` 1 the outage too: the parked message ids
-- with their scores, oldest first (Gate.open, Gate.release).
-- keys: gate, held
-- args: end_outage
local parked = redis.call('ZRANGE', held, 0, -1, 'WITHSCORES')
if end_outage == '1' then
    redis.call('DEL', gate)
end
redis.call('DEL', held)
return parked
