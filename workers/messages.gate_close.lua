-- Close the gate with this message as the probe, unless another is already probing (then
-- park it); the probe failing again counts a failure. 1: this message is the probe (Gate.fail).
-- keys: gate, held
-- args: mid, score, now
local probe = redis.call('HGET', gate, 'probe')
if not probe then
    redis.call('HSET', gate, 'probe', mid, 'since', now, 'failures', 1)
    return 1
end
if probe == mid then
    redis.call('HINCRBY', gate, 'failures', 1)
    return 1
end
redis.call('ZADD', held, score, mid)
return 0
