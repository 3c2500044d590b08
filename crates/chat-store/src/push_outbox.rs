//! PostgreSQL: what the notifier reads to decide who is notified (members with devices, their
//! levels, unread totals for the badge) and its outbox of deliveries, `push_deliveries`
//! (`migrations/postgres/0008_push_deliveries.sql`): one row per (device token, message),
//! inserted before the Kafka offsets move, claimed with a lease while a request is on the wire,
//! finished with the APNs answer. Every function is one statement for a whole batch.

use crate::pg::{PgError, PgPool};
use chat_types::limits::UNREAD_COUNT_MAX;
use chat_types::notifications::PushEnvironment;
use chat_types::{ChannelId, MessageId, UserId};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

/// A member of a channel with a device, and what deciding needs about them.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Candidate {
    pub channel_id: Uuid,
    pub user_id: Uuid,
    pub notify_level: String,
    pub joined_at: DateTime<Utc>,
    /// Lower case, to match `@mentions`.
    pub username: String,
    pub hide_previews: bool,
    pub token: String,
    pub environment: String,
    pub bundle_id: String,
}

/// Members of `channels` with at least one device and a level other than `none`: one row per
/// (channel, member, device).
pub async fn candidates(db: &PgPool, channels: &[ChannelId]) -> Result<Vec<Candidate>, PgError> {
    let ids: Vec<Uuid> = channels.iter().map(|c| c.0).collect();
    sqlx::query_as(
        "SELECT m.channel_id, m.user_id, m.notify_level, m.joined_at,
                lower(u.username) AS username, u.hide_previews,
                d.token, d.environment, d.bundle_id
         FROM memberships m
         JOIN devices d ON d.user_id = m.user_id
         JOIN users u ON u.id = m.user_id
         WHERE m.channel_id = ANY($1) AND m.notify_level <> 'none'",
    )
    .bind(&ids)
    .fetch_all(db)
    .await
}

/// A channel as a notification titles it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ChannelTitle {
    pub id: Uuid,
    pub direct: bool,
    pub name: String,
}

/// Names of `channels` and display names of `users`, for titles: two statements.
pub async fn titles(
    db: &PgPool,
    channels: &[ChannelId],
    users: &[UserId],
) -> Result<(Vec<ChannelTitle>, HashMap<UserId, String>), PgError> {
    let cids: Vec<Uuid> = channels.iter().map(|c| c.0).collect();
    let uids: Vec<Uuid> = users.iter().map(|u| u.0).collect();
    let chans = sqlx::query_as(
        "SELECT id, kind = 'direct' AS direct, name FROM channels WHERE id = ANY($1)",
    )
    .bind(&cids)
    .fetch_all(db)
    .await?;
    let names: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, display_name FROM users WHERE id = ANY($1)")
            .bind(&uids)
            .fetch_all(db)
            .await?;
    Ok((
        chans,
        names.into_iter().map(|(i, n)| (UserId(i), n)).collect(),
    ))
}

/// Each user's unread messages over all their channels (the badge, before the batch in hand)
/// and which of `messages` (channel, id) those totals count already, read from one snapshot.
/// The message servers log messages beside the notifier: with two separate reads, a message
/// logged between them would be counted twice or not at all (a badge one off).
pub async fn unread_totals_and_logged(
    db: &PgPool,
    users: &[UserId],
    messages: &[(ChannelId, MessageId)],
) -> Result<(HashMap<UserId, i64>, HashSet<MessageId>), PgError> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let totals = unread_totals(&mut tx, users).await?;
    let logged = logged(&mut tx, messages).await?;
    tx.commit().await?;
    Ok((totals, logged))
}

/// Each user's unread messages over all their channels, counted as the conversation list
/// counts them (each channel bounded by [`UNREAD_COUNT_MAX`]). One statement.
async fn unread_totals(
    db: &mut sqlx::PgConnection,
    users: &[UserId],
) -> Result<HashMap<UserId, i64>, PgError> {
    let ids: Vec<Uuid> = users.iter().map(|u| u.0).collect();
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT m.user_id, coalesce(sum(u.n), 0)::bigint
         FROM memberships m
         CROSS JOIN LATERAL (
             SELECT count(*) AS n FROM (
                 SELECT 1 FROM channel_messages l
                 WHERE l.channel_id = m.channel_id AND l.seq > m.read_seq AND l.sender_id <> m.user_id
                       AND NOT l.deleted
                 ORDER BY l.seq LIMIT $2) x
         ) u
         WHERE m.user_id = ANY($1)
         GROUP BY m.user_id",
    )
    .bind(&ids)
    .bind(i64::from(UNREAD_COUNT_MAX))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(u, n)| (UserId(u), n)).collect())
}

/// Which of `messages` (channel, id) the message servers have logged already (so the unread
/// totals count them): the notifier reads the topic beside them, not after them. Looks at each
/// channel's newest 256 positions (the primary key read backwards).
async fn logged(
    db: &mut sqlx::PgConnection,
    messages: &[(ChannelId, MessageId)],
) -> Result<HashSet<MessageId>, PgError> {
    let channels: Vec<Uuid> = messages.iter().map(|(c, _)| c.0).collect();
    let ids: Vec<Uuid> = messages.iter().map(|(_, m)| m.0).collect();
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT l.id
         FROM (SELECT DISTINCT channel_id FROM unnest($1::uuid[]) AS c (channel_id)) c
         CROSS JOIN LATERAL (
             SELECT id FROM channel_messages l WHERE l.channel_id = c.channel_id AND NOT l.deleted
             ORDER BY l.seq DESC LIMIT 256) l
         WHERE l.id = ANY($2)",
    )
    .bind(&channels)
    .bind(&ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(i,)| MessageId(i)).collect())
}

/// One notification to one device, as decided and as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Delivery {
    pub token: String,
    pub message_id: Uuid,
    pub user_id: Uuid,
    pub channel_id: Uuid,
    pub apns_id: Uuid,
    pub environment: String,
    pub bundle_id: String,
    pub payload: String,
    pub expires_at: DateTime<Utc>,
    pub attempts: i32,
}

impl Delivery {
    pub fn environment(&self) -> PushEnvironment {
        if self.environment == "sandbox" {
            PushEnvironment::Sandbox
        } else {
            PushEnvironment::Production
        }
    }
}

/// Insert `deliveries` as `sending`, leased for `lease` to the caller, who sends them now.
/// Those already there (a replayed record) are left alone and not returned: only the returned
/// rows may be sent. One statement.
pub async fn insert(
    db: &PgPool,
    deliveries: &[Delivery],
    lease: Duration,
) -> Result<Vec<Delivery>, PgError> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let mut cols = (
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
        Vec::with_capacity(deliveries.len()),
    );
    for d in deliveries {
        cols.0.push(d.token.as_str());
        cols.1.push(d.message_id);
        cols.2.push(d.user_id);
        cols.3.push(d.channel_id);
        cols.4.push(d.apns_id);
        cols.5.push(d.environment.as_str());
        cols.6.push(d.bundle_id.as_str());
        cols.7.push(d.payload.as_str());
        cols.8.push(d.expires_at);
    }
    sqlx::query_as(
        "INSERT INTO push_deliveries (token, message_id, user_id, channel_id, apns_id, environment,
                                      bundle_id, payload, expires_at, state, lease_until)
         SELECT r.*, 'sending', now() + $10 * interval '1 millisecond'
         FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[],
                     $7::text[], $8::text[], $9::timestamptz[])
              AS r (token, message_id, user_id, channel_id, apns_id, environment, bundle_id, payload, expires_at)
         ON CONFLICT (token, message_id) DO NOTHING
         RETURNING token, message_id, user_id, channel_id, apns_id, environment, bundle_id,
                   payload, expires_at, attempts",
    )
    .bind(&cols.0)
    .bind(&cols.1)
    .bind(&cols.2)
    .bind(&cols.3)
    .bind(&cols.4)
    .bind(&cols.5)
    .bind(&cols.6)
    .bind(&cols.7)
    .bind(&cols.8)
    .bind(lease.as_millis() as f64)
    .fetch_all(db)
    .await
}

/// Claim up to `limit` unfinished deliveries that are due: `pending` ones whose time has come,
/// and `sending` ones whose lease ran out (their holder died or lost them; `lost_answers`
/// counts that). Leased to the caller for `lease`; rows that other notifiers are claiming at the
/// same moment are skipped. Deliveries whose device is gone or belongs to someone else now are
/// finished as `dropped` in the same statement and not returned: a message is never shown on
/// another account's phone.
pub async fn claim_due(db: &PgPool, limit: i64, lease: Duration) -> Result<Vec<Delivery>, PgError> {
    sqlx::query_as(
        "WITH due AS (
             SELECT p.token, p.message_id,
                    coalesce((SELECT d.user_id = p.user_id FROM devices d WHERE d.token = p.token), false) AS theirs
             FROM push_deliveries p
             WHERE p.state IN ('pending', 'sending') AND p.next_attempt_at <= now()
               AND p.lease_until <= now()
             ORDER BY p.next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         UPDATE push_deliveries p SET
             state = CASE WHEN due.theirs AND p.expires_at > now() THEN 'sending'
                          WHEN due.theirs THEN 'failed' ELSE 'dropped' END,
             done_at = CASE WHEN due.theirs AND p.expires_at > now() THEN NULL ELSE now() END,
             lease_until = now() + $2 * interval '1 millisecond',
             attempts = p.attempts + 1,
             lost_answers = p.lost_answers + (p.state = 'sending')::int
         FROM due
         WHERE p.token = due.token AND p.message_id = due.message_id
         RETURNING p.token, p.message_id, p.user_id, p.channel_id, p.apns_id, p.environment,
                   p.bundle_id, p.payload, p.expires_at, p.attempts, p.state",
    )
    .bind(limit)
    .bind(lease.as_millis() as f64)
    .fetch_all(db)
    .await
    .map(|rows: Vec<ClaimedRow>| {
        rows.into_iter()
            .filter(|r| r.state == "sending")
            .map(|r| r.delivery)
            .collect()
    })
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    delivery: Delivery,
    state: String,
}

/// How one delivery ended, or when it is tried again.
#[derive(Clone, Debug)]
pub enum Finish {
    Sent,
    /// Try again at `at` (back to `pending`).
    Retry {
        at: DateTime<Utc>,
    },
    /// Token dead or moved: never sent.
    Dropped,
    /// Given up (attempts, expiry, an answer that retrying cannot change).
    Failed,
}

/// A finished attempt: the delivery's key, what APNs answered and what follows.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub token: String,
    pub message_id: Uuid,
    pub status: Option<i32>,
    pub reason: Option<String>,
    pub finish: Finish,
}

/// Record outcomes: one statement for all of them.
pub async fn finish(db: &PgPool, outcomes: &[Outcome]) -> Result<(), PgError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let n = outcomes.len();
    let (mut tokens, mut ids, mut states, mut ats, mut statuses, mut reasons) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::<Option<i32>>::with_capacity(n),
        Vec::<Option<&str>>::with_capacity(n),
    );
    let now = Utc::now();
    for o in outcomes {
        tokens.push(o.token.as_str());
        ids.push(o.message_id);
        let (state, at) = match &o.finish {
            Finish::Sent => ("sent", now),
            Finish::Retry { at } => ("pending", *at),
            Finish::Dropped => ("dropped", now),
            Finish::Failed => ("failed", now),
        };
        states.push(state);
        ats.push(at);
        statuses.push(o.status);
        reasons.push(o.reason.as_deref());
    }
    sqlx::query(
        "UPDATE push_deliveries p SET
             state = r.state,
             next_attempt_at = CASE WHEN r.state = 'pending' THEN r.at ELSE p.next_attempt_at END,
             lease_until = CASE WHEN r.state = 'pending' THEN r.at ELSE p.lease_until END,
             done_at = CASE WHEN r.state = 'pending' THEN NULL ELSE r.at END,
             last_status = r.status, last_reason = r.reason
         FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[], $5::int[], $6::text[])
              AS r (token, message_id, state, at, status, reason)
         WHERE p.token = r.token AND p.message_id = r.message_id AND p.state = 'sending'",
    )
    .bind(&tokens)
    .bind(&ids)
    .bind(&states)
    .bind(&ats)
    .bind(&statuses)
    .bind(&reasons)
    .execute(db)
    .await?;
    Ok(())
}

/// APNs said `token` is no longer valid: forget the device unless it was registered again
/// after `invalid_since` (APNs' timestamp of a 410; `None`: at once, e.g. `BadDeviceToken`).
/// Returns whether it was deleted.
pub async fn forget_dead_token(
    db: &PgPool,
    token: &str,
    invalid_since: Option<DateTime<Utc>>,
) -> Result<bool, PgError> {
    let r = sqlx::query(
        "DELETE FROM devices WHERE token = $1 AND ($2::timestamptz IS NULL OR updated_at <= $2)",
    )
    .bind(token)
    .bind(invalid_since)
    .execute(db)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Delete finished rows older than `age` (at most `limit`), so the table stays the size of a
/// few days of notifications. Returns how many went.
pub async fn prune(db: &PgPool, age: Duration, limit: i64) -> Result<u64, PgError> {
    let r = sqlx::query(
        "DELETE FROM push_deliveries WHERE (token, message_id) IN (
             SELECT token, message_id FROM push_deliveries
             WHERE created_at < now() - $1 * interval '1 second'
             LIMIT $2)",
    )
    .bind(age.as_secs() as f64)
    .bind(limit)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Rows waiting to be sent (pending or sending): a gauge.
pub async fn unfinished(db: &PgPool) -> Result<i64, PgError> {
    sqlx::query_scalar("SELECT count(*) FROM push_deliveries WHERE state IN ('pending', 'sending')")
        .fetch_one(db)
        .await
}
