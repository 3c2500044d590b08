-- The directory's activity order moves to a narrow table of its own (issue #14). The message
-- servers wrote each active channel's `channels.last_message_at` five times a second: since that
-- column is indexed, each write was a new version of the whole channels row with an entry in
-- every one of its six indexes (the trigram index of names and the NFKC-normalised name key
-- among them): ~34 µs and 8 WAL records per channel, 14 % of PostgreSQL's statement time at
-- 1,600 msg/s in groups. Here a write touches a two-column row and its two indexes.
-- Every statement can run again.

-- One row per group channel (direct channels are not listed): the time of its last message,
-- or the Unix epoch for a channel without one (so such channels sort last, and a cursor can
-- name their place), only ever moved forward.
CREATE TABLE IF NOT EXISTS channel_activity (
    channel_id      uuid PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    last_message_at timestamptz NOT NULL
);

-- The directory's activity order, an index scan from the top or from a cursor (keyset
-- pagination: `(last_message_at, channel_id) < (cursor time, cursor id)`).
CREATE INDEX IF NOT EXISTS channel_activity_order_idx
    ON channel_activity (last_message_at DESC, channel_id DESC);

-- Every group channel gets its row when it is created, whichever code creates it.
CREATE OR REPLACE FUNCTION channels_add_activity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO channel_activity (channel_id, last_message_at)
    VALUES (NEW.id, to_timestamp(0))
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS channels_activity ON channels;
CREATE TRIGGER channels_activity AFTER INSERT ON channels
    FOR EACH ROW WHEN (NEW.kind = 'group') EXECUTE FUNCTION channels_add_activity();

-- The channels that exist, with the activity recorded so far. The trigger above holds a lock
-- on `channels` until this migration commits, so no channel is created between the two. The
-- old column is read only while it exists: running this again after a later migration drops
-- it must still work.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'channels'
                 AND column_name = 'last_message_at') THEN
        INSERT INTO channel_activity (channel_id, last_message_at)
        SELECT id, coalesce(last_message_at, to_timestamp(0)) FROM channels WHERE kind = 'group'
        ON CONFLICT (channel_id) DO UPDATE
            SET last_message_at = GREATEST(channel_activity.last_message_at,
                                           EXCLUDED.last_message_at);
    ELSE
        INSERT INTO channel_activity (channel_id, last_message_at)
        SELECT id, to_timestamp(0) FROM channels WHERE kind = 'group'
        ON CONFLICT DO NOTHING;
    END IF;
END $$;

-- The old order's index goes. Its column stays for now, written by nobody of this version:
-- message servers of an older version, during a rolling upgrade, may still write it (without
-- the index such a write is a cheap HOT update) and older API servers still read it. A later
-- migration drops it.
DROP INDEX IF EXISTS channels_directory_activity_idx;
