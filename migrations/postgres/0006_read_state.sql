-- Read state and unread counts (issue #15): how far each member has read, and a slim log of
-- every stored message that the conversation list counts and previews from. Every statement
-- can run again (the shared development database is migrated by several checkouts).

-- The highest position the member has marked read; only moves forward (GREATEST). A member
-- who joins starts at the channel's newest message (history is not "unread" news).
ALTER TABLE memberships ADD COLUMN IF NOT EXISTS read_seq bigint NOT NULL DEFAULT 0;

-- One row per stored message (not per edit or reaction), written by the message server that
-- stored it, in one statement per batch (idempotent: a replayed record writes nothing new).
-- Unread and mention counts are counted here over the positions after a read mark (bounded),
-- and the newest row is the conversation list's preview. Cassandra keeps the messages.
CREATE TABLE IF NOT EXISTS channel_messages (
    channel_id uuid NOT NULL,
    seq        bigint NOT NULL,
    id         uuid NOT NULL,
    sender_id  uuid NOT NULL,
    created_at timestamptz NOT NULL,
    preview    text NOT NULL,
    -- Members the message mentions (`@username`, resolved when it was stored).
    mentions   uuid[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (channel_id, seq)
);
