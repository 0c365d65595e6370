-- Let the ticker's lead go, if this worker still holds it.
-- keys: lead
-- args: holder
if redis.call('GET', lead) == holder then return redis.call('DEL', lead) end
return 0
