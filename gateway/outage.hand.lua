-- The probe goes on through another sender: the next message routed here `after` seconds
-- from now probes (Gate.hand_over). 1 if this message was the probe.
-- keys: gate
-- args: mid, after
-- uses: gateway/pacing.clock.lib
if redis.call('HGET', gate, 'probe') ~= mid then return 0 end
redis.call('HSET', gate, 'probe', '', 'next', tostring(server_now() + tonumber(after)))
return 1
