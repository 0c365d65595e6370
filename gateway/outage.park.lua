-- Park a message until the outage ends, if the sender is still in outage (Gate.park): 1
-- parked, 0 the outage ended meanwhile (route it again).
-- keys: gate, held
-- args: mid, score
if not redis.call('HGET', gate, 'probe') then return 0 end
redis.call('ZADD', held, score, mid)
return 1
