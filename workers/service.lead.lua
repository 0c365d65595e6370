-- Take or keep the ticker's lead (the scheduler lock) for `ttl_ms`; 1 when this worker has it.
-- keys: lead
-- args: holder, ttl_ms
local current = redis.call('GET', lead)
if current == false or current == holder then
    redis.call('SET', lead, holder, 'PX', ttl_ms)
    return 1
end
return 0
