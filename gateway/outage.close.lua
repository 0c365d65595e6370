-- A transient failure: the sender is in outage with this message as its probe, unless another
-- is probing. Returns the failures in a row when this message is (now) the probe, else 0
-- (Gate.fail).
-- keys: gate
-- args: mid
-- uses: gateway/pacing.clock.lib
local probe = redis.call('HGET', gate, 'probe')
if not probe then
    redis.call('HSET', gate, 'probe', mid, 'since', tostring(server_now()), 'failures', 1)
    return 1
end
if probe == mid or probe == '' then
    redis.call('HSET', gate, 'probe', mid)
    return redis.call('HINCRBY', gate, 'failures', 1)
end
return 0
