-- Library: the one claim rule (store.claim). A claim is a key of its own (field '') or a
-- field of a hash; it holds 'pending:<time>' until settled with its outcome (a message id).
-- Taken when absent, or when pending since before `stale_before` (a claimant that died);
-- never when settled, or pending with no lease (stale_before ''). `ttl` (seconds, or '')
-- bounds a key claim's life. Returns 1 when taken, else 0.
local function claim(key, field, now, stale_before, ttl)
    local held
    if field == '' then held = redis.call('GET', key) else held = redis.call('HGET', key, field) end
    if held and (string.sub(held, 1, 8) ~= 'pending:' or stale_before == ''
                 or tonumber(string.sub(held, 9)) > tonumber(stale_before)) then
        return 0
    end
    local mark = 'pending:' .. now
    if field ~= '' then
        redis.call('HSET', key, field, mark)
    elseif ttl ~= '' then
        redis.call('SET', key, mark, 'EX', ttl)
    else
        redis.call('SET', key, mark)
    end
    return 1
end
