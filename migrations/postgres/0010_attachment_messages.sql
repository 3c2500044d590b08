-- Attachments by the message that carries them (issue #16): a delete orphans its message's
-- files (`UPDATE ... WHERE message_id = ANY($1)`), which without this index reads the table.
CREATE INDEX IF NOT EXISTS attachments_message_idx ON attachments (message_id)
    WHERE message_id IS NOT NULL;
