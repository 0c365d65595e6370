-- Every write of a ticket, in one atomic step: open one (spec.open) or change one.
-- args: spec:json
-- uses: gateway/tickets.write.lib
if spec.open then return open_ticket(spec.open) end
return change_ticket(spec.change)
