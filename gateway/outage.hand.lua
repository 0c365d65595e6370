-- The probe goes on through another sender: the next message routed here after `next` probes
-- (Gate.hand_over). 1 if this message was the probe.
-- keys: gate
-- args: mid, next
if redis.call('HGET', gate, 'probe') ~= mid then return 0 end
redis.call('HSET', gate, 'probe', '', 'next', next)
return 1
