-- Every change to a message record, in one round trip (messages._set). It sets `fields`, and
-- `missing` only where the record has none; with `forward`, the status only if it ranks above
-- the record's own (RANK). A status change moves the record between status indexes; a
-- provider id written gets its pointer. Nothing to change: nothing written.
-- Returns {moved, the record}, or false when there is no such record.
-- keys: key
-- args: change:json
-- uses: gateway/store.fill.lib
local old = redis.call('HGET', key, 'status')
if not old then return false end
local fields = change.fields
for i = 1, #change.missing, 2 do
    local have = redis.call('HGET', key, change.missing[i])
    if not have or have == '' then
        fields[#fields + 1] = change.missing[i]
        fields[#fields + 1] = change.missing[i + 1]
    end
end
local status = change.status
if status and change.forward and (change.ranks[status] or 0) <= (change.ranks[old] or 0) then status = nil end
local moved = status ~= nil and status ~= old
if status then
    fields[#fields + 1] = 'status'
    fields[#fields + 1] = status
end
if #fields > 0 then
    fields[#fields + 1] = 'updated_at'
    fields[#fields + 1] = change.now
    redis.call('HSET', key, unpack(fields))
    for i = 1, #fields, 2 do
        if fields[i] == 'provider_id' and fields[i + 1] ~= '' then
            redis.call('SET', fill(change.sid_key, '{sid}', fields[i + 1]), change.id)
        end
    end
end
if moved then
    local created = redis.call('HGET', key, 'created_at') or change.now
    redis.call('ZREM', fill(change.index, '{status}', old), change.id)
    redis.call('ZADD', fill(change.index, '{status}', status), created, change.id)
end
return {moved and 1 or 0, redis.call('HGETALL', key)}
