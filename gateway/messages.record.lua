-- A new message record (messages.record).
-- args: record:json
-- uses: gateway/messages.record.lib
return record_message(record)
