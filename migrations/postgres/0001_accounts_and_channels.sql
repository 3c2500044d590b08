-- Accounts, channels, memberships and refresh tokens. Messages live in Cassandra/ScyllaDB.

-- Trigram indexes make substring search of channel names and prefix search of users cheap.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id            uuid PRIMARY KEY,                -- UUIDv7, made by the API
    username      text NOT NULL,                   -- as typed; unique ignoring case (index below)
    display_name  text NOT NULL,
    password_hash text NOT NULL,                   -- argon2id PHC string
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- "unique ignoring case": the constraint lives on lower(username); 23505 on it means 409.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
-- Prefix search (`lower(username) LIKE 'pre%'`).
CREATE INDEX users_username_prefix_idx ON users (lower(username) text_pattern_ops);

CREATE TABLE channels (
    id          uuid PRIMARY KEY,                  -- UUIDv7
    kind        text NOT NULL CHECK (kind IN ('group', 'direct')),
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    -- For direct channels: "<smaller user id>:<larger user id>". The unique constraint makes
    -- "the same pair always gets the same channel" hold under concurrent creation.
    dm_key      text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'direct') = (dm_key IS NOT NULL))
);
CREATE INDEX channels_group_name_trgm_idx ON channels USING gin (lower(name) gin_trgm_ops)
    WHERE kind = 'group';

CREATE TABLE memberships (
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)              -- members of a channel: index-only scan
);
CREATE INDEX memberships_user_idx ON memberships (user_id, channel_id);  -- my channels

-- Rotating refresh tokens. Each login starts a family; each refresh uses one token and issues the
-- next of the same family. A token used twice means it leaked: the whole family is revoked.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,                  -- SHA-256 of the opaque token; never the token
    family_id  uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,                        -- set when rotated
    revoked_at timestamptz,                        -- set on logout or reuse
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
