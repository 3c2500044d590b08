-- The unread log becomes the index of stored message ids (issue #14): id -> channel, position
-- and the Kafka record that stored it, which the message servers look up for every batch (is
-- this record a replay, this message a resend?), and the API and gateways for cursors. It was
-- a Cassandra partition per message (`message_ids`), the largest single cost left in storage.
-- Events' ids stay in Cassandra, and so do the ids of messages stored before this migration
-- (they are looked up there when the log does not have them). Every statement can run again.

-- The offset of the Kafka record the message was stored from (NULL: logged by an older version).
ALTER TABLE channel_messages ADD COLUMN IF NOT EXISTS kafka_offset bigint;
-- A deleted message keeps its row, marked: its id must still be found (a resend of it must not
-- become a new message, a history cursor on it must keep working). Unread counts, previews
-- and the notifier skip marked rows. Older versions removed the row instead.
ALTER TABLE channel_messages ADD COLUMN IF NOT EXISTS deleted boolean NOT NULL DEFAULT false;
-- Not unique: a database written before session 29's fix may hold one id at two positions;
-- lookups take the first.
CREATE INDEX IF NOT EXISTS channel_messages_id_idx ON channel_messages (id);

-- Since when every stored message is logged before its rows are written: set by the first
-- message server of this version to start (all older ones stopped, docs/operations.md). A
-- record produced before then may have been stored by an older message server that never
-- logged it, so its id is also looked up in Cassandra; records produced later only in the
-- log. A database without channels (a new install) needs no such lookup at all.
CREATE TABLE IF NOT EXISTS message_index (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    logged_since timestamptz NOT NULL
);
INSERT INTO message_index (logged_since)
    SELECT '-infinity' WHERE NOT EXISTS (SELECT 1 FROM channels)
    ON CONFLICT DO NOTHING;
