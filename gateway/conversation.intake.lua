-- An inbound text's one round trip (conversation._intake). It drops a text already handled
-- (claimed by provider id), counts it against its sender's limit, records it and, when the
-- sender writing as a resident asks for help, has no open ticket and no other text of theirs
-- is being handled (the sender's lock is free), opens the ticket. Anything else goes on in
-- Python under that lock. Returns {state, count, opted out[, the new ticket's code]}.
-- args: intake:json
-- uses: gateway/store.fill.lib, gateway/store.claim.lib, gateway/tickets.write.lib, gateway/messages.record.lib
if intake.seen ~= '' and claim(intake.seen, '', intake.now, '', intake.seen_ttl) == 0 then
    return {'dup', 0, 0}
end
local count = redis.call('INCR', intake.rate)
redis.call('EXPIRE', intake.rate, intake.rate_ttl)
if count <= intake.record_limit then record_message(intake.record) end
local opted = redis.call('SISMEMBER', intake.optout, intake.sender)
if count > intake.limit then return {'over', count, opted} end
if intake.open == nil or redis.call('EXISTS', intake.lock) == 1 then return {'go', count, opted} end
local open = {}
for _, status in ipairs(intake.open_statuses) do open[status] = true end
for _, code in ipairs(redis.call('ZREVRANGEBYSCORE', intake.own, '+inf', intake.since)) do
    if open[redis.call('HGET', fill(intake.ticket, '{code}', code), 'status')] then
        return {'go', count, opted}
    end
end
return {'opened', count, opted, open_ticket(intake.open)}
