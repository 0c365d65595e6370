-- May this message try the sender? 0: it is not in outage; 2: this message is its probe (or
-- becomes it: the probe was handed on and the next is due); 1: in outage (Gate.state).
-- keys: gate
-- args: mid
-- uses: gateway/pacing.clock.lib
local probe = redis.call('HGET', gate, 'probe')
if not probe then return 0 end
if probe == mid then return 2 end
if probe == '' and server_now() >= tonumber(redis.call('HGET', gate, 'next') or '0') then
    redis.call('HSET', gate, 'probe', mid)
    return 2
end
return 1
