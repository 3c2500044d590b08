-- The notifier's outbox (issue #16): one row per (device token, message) it decided to notify,
-- written in one statement per Kafka batch before the batch's offsets are committed. The
-- primary key makes a replayed record insert nothing (no double notification); the rows not
-- yet `sent` are what a notifier that crashed, or whose requests failed, sends again. Every
-- statement can run again (the shared development database is migrated by several checkouts).
CREATE TABLE IF NOT EXISTS push_deliveries (
    token           text NOT NULL,
    message_id      uuid NOT NULL,
    user_id         uuid NOT NULL,                 -- who it was decided for (the token may move)
    channel_id      uuid NOT NULL,
    apns_id         uuid NOT NULL,                 -- the same on every attempt
    environment     text NOT NULL,
    bundle_id       text NOT NULL,
    payload         text NOT NULL,                 -- the JSON body, fixed when decided
    expires_at      timestamptz NOT NULL,          -- apns-expiration; never sent after it
    -- sending: a notifier holds it until lease_until (a request may be on the wire);
    -- pending: waits for next_attempt_at; sent / dropped (token dead or moved) / failed: done.
    state           text NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'dropped', 'failed')),
    attempts        integer NOT NULL DEFAULT 1,
    -- Times a lease of state `sending` ran out and another claim took the row over: the
    -- request of the previous holder may have reached APNs (its answer was lost).
    lost_answers    integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz NOT NULL,
    last_status     integer,
    last_reason     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz,
    PRIMARY KEY (token, message_id)
);
-- What the recovery loop looks for: unfinished rows by due time.
CREATE INDEX IF NOT EXISTS push_deliveries_due_idx ON push_deliveries (next_attempt_at)
    WHERE state IN ('pending', 'sending');
-- Pruning old rows.
CREATE INDEX IF NOT EXISTS push_deliveries_created_idx ON push_deliveries (created_at);
