-- Library: a ticket is written by these two functions only (tickets.py builds their specs).
-- uses: gateway/store.fill.lib

-- A new ticket: allocate the next code, store the hash, its indexes and first history entry,
-- and put its code on the intake list when `notify`. Shared with the SMS intake script.
-- t: seq, indexes (tickets, by status, by village, by caller), intake, key and history
-- (templates with "{code}"), first (the first code), now, notify, entry, fields (flat list)
local function open_ticket(t)
    local code = tostring(tonumber(t.first) + redis.call('INCR', t.seq))
    local fields = {'code', code}
    for _, x in ipairs(t.fields) do fields[#fields + 1] = x end
    redis.call('HSET', fill(t.key, '{code}', code), unpack(fields))
    for _, index in ipairs(t.indexes) do redis.call('ZADD', index, t.now, code) end
    redis.call('RPUSH', fill(t.history, '{code}', code), t.entry)
    if t.notify then redis.call('LPUSH', t.intake, code) end
    return code
end

-- A change of an existing ticket, as tickets.MOVES describes it (see there for each field).
-- Returns {'unknown'}, {'refused', reason, before} or {'ok', before, after} (flat hashes).
local function change_ticket(c)
    local before = redis.call('HGETALL', c.key)
    if #before == 0 then return {'unknown'} end
    local t = {}
    for i = 1, #before, 2 do t[before[i]] = before[i + 1] end
    local allowed = false
    for _, status in ipairs(c.allowed) do allowed = allowed or status == t.status end
    if not allowed then return {'refused', t.status, before} end
    local holder = t.accepted_by or ''
    if c.owner ~= '' and holder ~= c.owner then return {'refused', 'not_yours', before} end
    local fields = c.fields
    if c.append ~= '' then
        -- joined here, so two additions at once both stay
        local joined = ((t[c.append] or '') .. '\n' .. c.line):match('^%s*(.-)%s*$')
        fields[#fields + 1] = c.append
        fields[#fields + 1] = joined
    end
    fields[#fields + 1] = 'updated_at'
    fields[#fields + 1] = c.now
    if c.status ~= '' then
        fields[#fields + 1] = 'status'
        fields[#fields + 1] = c.status
    end
    redis.call('HSET', c.key, unpack(fields))
    local created = t.created_at
    if not created or created == '' then created = '0' end
    if c.status ~= '' and c.status ~= t.status then
        redis.call('ZREM', fill(c.by_status, '{status}', t.status), c.code)
        redis.call('ZADD', fill(c.by_status, '{status}', c.status), created, c.code)
    end
    redis.call('RPUSH', c.history, c.entry)
    if c.offers == 'add' then
        for _, phone in ipairs(c.phones) do
            redis.call('ZADD', c.offered, 'NX', c.now, phone)
            redis.call('ZADD', fill(c.offers_of, '{phone}', phone), c.now, c.code)
        end
    elseif c.offers == 'clear' then
        for _, phone in ipairs(redis.call('ZRANGE', c.offered, 0, -1)) do
            redis.call('ZREM', fill(c.offers_of, '{phone}', phone), c.code)
        end
    elseif c.offers == 'forget' then
        redis.call('DEL', c.offered)
    end
    if c.assignee ~= '' and holder ~= '' then
        redis.call('ZREM', fill(c.assigned, '{phone}', holder), c.code)
    end
    if c.assignee == 'move' then
        redis.call('ZADD', fill(c.assigned, '{phone}', c.taker), created, c.code)
    end
    return {'ok', before, redis.call('HGETALL', c.key)}
end
