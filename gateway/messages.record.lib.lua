-- Library: store a message record under a new id ("m" + the message counter): its hash, the
-- time index, its status index and the provider id's pointer. Shared by messages.py and the
-- inbound-text intake (conversation.intake.lua), so a record is written one way.
-- m: seq, all, key ({id}), status_index, sid_key ({id} or ''), now, fields (flat list)
-- uses: gateway/store.fill.lib
local function record_message(m)
    local mid = 'm' .. redis.call('INCR', m.seq)
    local fields = m.fields
    fields[#fields + 1] = 'id'
    fields[#fields + 1] = mid
    redis.call('HSET', fill(m.key, '{id}', mid), unpack(fields))
    redis.call('ZADD', m.all, m.now, mid)
    redis.call('ZADD', m.status_index, m.now, mid)
    if m.sid_key ~= '' then redis.call('SET', m.sid_key, mid) end
    return mid
end
