-- May this message try the provider? 0: the gate is open, 2: it is the probe, 1: parked in
-- `held` until the outage ends (Gate.admit).
-- keys: gate, held
-- args: mid, score
local probe = redis.call('HGET', gate, 'probe')
if not probe then return 0 end
if probe == mid then return 2 end
redis.call('ZADD', held, score, mid)
return 1
