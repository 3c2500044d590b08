-- Finding channels: group names unique ignoring case, and what the channel directory sorts by
-- (member count, last message). Every statement can run again on a database that already has
-- it (the shared development database is migrated by several checkouts).

-- 1. Group channel names are unique ignoring case and Unicode compatibility forms: "General",
--    "general" and the full-width "ｇｅｎｅｒａｌ" are one name. Direct channels are excluded: they
--    are stored with an empty name (their name is the other user's, per viewer).
--
-- Databases from before this rule may hold duplicates. The oldest channel of each name keeps
-- it; every later one is renamed "<name> (<last 8 hex digits of its id>)": deterministic, tied
-- to the channel and not its rank (renaming again cannot shift names), and from the id's random
-- bits, so it does not meet another channel's name. The name is cut to stay within 80 characters.
WITH ranked AS (
    SELECT id, name,
           row_number() OVER (PARTITION BY lower(normalize(name, NFKC))
                              ORDER BY created_at, id) AS n
    FROM channels
    WHERE kind = 'group'
)
UPDATE channels c
SET name = left(r.name, 69) || ' (' || right(replace(c.id::text, '-', ''), 8) || ')'
FROM ranked r
WHERE c.id = r.id AND r.n > 1;

-- The rule itself, enforced by PostgreSQL so that two concurrent creations cannot both win:
-- a 23505 on this index is the API's 409 `channel_name_taken`.
CREATE UNIQUE INDEX IF NOT EXISTS channels_group_name_key
    ON channels (lower(normalize(name, NFKC)))
    WHERE kind = 'group';

-- 2. When the channel last received a message: written by the message servers once per batch,
--    only ever forward (GREATEST). NULL: no message yet.
ALTER TABLE channels ADD COLUMN IF NOT EXISTS last_message_at timestamptz;

-- 3. Members per channel, kept by a trigger on memberships so the directory can sort by it
--    through an index (counting members per row would read every membership).
ALTER TABLE channels ADD COLUMN IF NOT EXISTS member_count integer NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION channels_count_members() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE channels SET member_count = member_count + 1 WHERE id = NEW.channel_id;
    ELSE
        UPDATE channels SET member_count = member_count - 1 WHERE id = OLD.channel_id;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS memberships_count ON memberships;
CREATE TRIGGER memberships_count AFTER INSERT OR DELETE ON memberships
    FOR EACH ROW EXECUTE FUNCTION channels_count_members();

-- Counted once here (inside the migration's transaction, so no membership change slips
-- between the count and the trigger); exact again if this runs a second time.
UPDATE channels c
SET member_count = m.n
FROM (SELECT channel_id, count(*)::integer AS n FROM memberships GROUP BY channel_id) m
WHERE c.id = m.channel_id AND c.member_count IS DISTINCT FROM m.n;

-- 4. The directory's two orders, each an index scan from the top or from a cursor (keyset
--    pagination: `(key, id) < (cursor key, cursor id)`); only group channels are listed.
--    EXPLAIN at 100,000 channels: "Index Scan using channels_directory_members_idx" (and
--    `..._activity_idx`) with "Index Cond: (ROW(...) < ROW(...))" and a Limit, no Sort.
CREATE INDEX IF NOT EXISTS channels_directory_members_idx
    ON channels (member_count DESC, id DESC)
    WHERE kind = 'group';
-- Channels without messages sort last (as 1970-01-01; to_timestamp(0) is immutable, so it may
-- appear in an index), newest first among themselves.
CREATE INDEX IF NOT EXISTS channels_directory_activity_idx
    ON channels ((coalesce(last_message_at, to_timestamp(0))) DESC, id DESC)
    WHERE kind = 'group';

-- 5. People search matches display names anywhere (substring, ignoring case) as well as
--    username prefixes: a trigram index serves `lower(display_name) LIKE '%text%'`.
CREATE INDEX IF NOT EXISTS users_display_name_trgm_idx
    ON users USING gin (lower(display_name) gin_trgm_ops);
