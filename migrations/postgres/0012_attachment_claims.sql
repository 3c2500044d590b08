-- When a send claimed an upload, and when the message that carries it was stored (issue #16).
-- A gateway claims the files of a send before producing it to Kafka; if the produce fails and
-- the client never sends again, the claim names a message that does not exist and the upload
-- can neither be sent in another message nor be swept. The message server sets `sent_at` when
-- it stores the message; the sweeper of chat-media releases claims unsent after
-- `media.claimed_unsent_after_secs`, and the upload is then swept like any unsent one.
-- Every statement can run again.
ALTER TABLE attachments ADD COLUMN IF NOT EXISTS claimed_at timestamptz;
ALTER TABLE attachments ADD COLUMN IF NOT EXISTS sent_at timestamptz;
-- Claims made before these columns existed: their messages are taken as sent (nothing tells
-- which were not), so nothing carried so far is ever released.
UPDATE attachments SET claimed_at = created_at, sent_at = created_at
    WHERE message_id IS NOT NULL AND claimed_at IS NULL;
CREATE INDEX IF NOT EXISTS attachments_claimed_unsent_idx ON attachments (claimed_at)
    WHERE message_id IS NOT NULL AND sent_at IS NULL;
