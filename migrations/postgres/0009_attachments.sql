-- Attachments (issue #16): files a member uploads to a channel's object store through
-- presigned URLs. The row is made before the upload (`pending`), becomes `ready` when the API
-- has checked the object (`complete`), and is claimed by the message that carries it
-- (`message_id`, set by the gateway in a later increment). Object key `o/<id>`, thumbnail
-- `t/<id>.jpg`: never the user's file name. Every statement can run again (the shared
-- development database is migrated by several checkouts).
CREATE TABLE IF NOT EXISTS attachments (
    id           uuid PRIMARY KEY,                    -- UUIDv7
    channel_id   uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    uploader_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    content_type text NOT NULL,
    size         bigint NOT NULL CHECK (size > 0),
    -- orphaned: its message was deleted; the sweeper removes object and row.
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'ready', 'orphaned')),
    width        integer,                             -- images, upright (EXIF orientation applied)
    height       integer,
    thumb_state  text NOT NULL DEFAULT 'none' CHECK (thumb_state IN ('none', 'queued', 'working', 'ready')),
    thumb_lease  timestamptz,
    message_id   uuid,                                -- the message that carries it
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
-- The sweeper: attachments no message claimed, oldest first.
CREATE INDEX IF NOT EXISTS attachments_pending_idx ON attachments (created_at) WHERE message_id IS NULL;
-- The thumbnail worker's queue.
CREATE INDEX IF NOT EXISTS attachments_thumb_idx ON attachments (completed_at)
    WHERE thumb_state IN ('queued', 'working');
-- The per-user limit of pending uploads, counted at every create.
CREATE INDEX IF NOT EXISTS attachments_uploader_idx ON attachments (uploader_id) WHERE state = 'pending';
