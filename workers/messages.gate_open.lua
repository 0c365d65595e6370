-- End the outage: the parked message ids, oldest first (Gate.open).
-- keys: gate, held
local parked = redis.call('ZRANGE', held, 0, -1)
redis.call('DEL', gate)
redis.call('DEL', held)
return parked
