-- Push notifications (issue #16): the devices each user registers, how much of each channel
-- notifies them, and whether notifications show a preview. The notifier reads these. Every
-- statement can run again (the shared development database is migrated by several checkouts).

-- A device token belongs to one user: registering it again (by anyone) moves it. `updated_at`
-- is the last registration (apps register at every launch); the oldest of a user's devices
-- beyond the limit is forgotten (chat_types::limits::DEVICES_PER_USER_MAX).
CREATE TABLE IF NOT EXISTS devices (
    token       text PRIMARY KEY,                -- lowercase hexadecimal
    platform    text NOT NULL CHECK (platform IN ('apns')),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    environment text NOT NULL CHECK (environment IN ('production', 'sandbox')),
    bundle_id   text NOT NULL,
    -- The session (refresh-token family) that registered it: ending that session (logout, a
    -- reused refresh token, logout everywhere) forgets the device, so a signed-out phone is
    -- never notified. NULL for tokens older than sessions in access tokens.
    session_id  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS devices_user_idx ON devices (user_id, updated_at DESC);
CREATE INDEX IF NOT EXISTS devices_session_idx ON devices (session_id);

-- all: every message from someone else; mentions: only those mentioning the member; none.
ALTER TABLE memberships ADD COLUMN IF NOT EXISTS notify_level text NOT NULL DEFAULT 'all'
    CHECK (notify_level IN ('all', 'mentions', 'none'));

-- Notifications say only that there is a new message (no sender, no text).
ALTER TABLE users ADD COLUMN IF NOT EXISTS hide_previews boolean NOT NULL DEFAULT false;
