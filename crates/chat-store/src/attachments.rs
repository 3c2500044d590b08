//! PostgreSQL: attachments (issue #16), from the upload's creation (`pending`) to its check
//! (`ready`, with an image's width and height), its claim by a send (`message_id`,
//! `claimed_at`) and its message's storing (`sent_at`). The bytes are in the object store under
//! `o/<id>` ([`crate::objects`]). Schema: `migrations/postgres/0009_attachments.sql`,
//! `0012_attachment_claims.sql`.

use crate::pg::{PgError, PgPool};
use chat_types::attachments::{Attachment, AttachmentState, MessageAttachment, ThumbnailState};
use chat_types::{ChannelId, MessageId, UserId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Pending uploads older than this no longer count against their uploader's limit: the
/// sweeper removes them (an upload URL lives 15 minutes; a new one can be asked for meanwhile).
const PENDING_COUNTED_FOR: &str = "1 hour";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    channel_id: Uuid,
    uploader_id: Uuid,
    name: String,
    content_type: String,
    size: i64,
    width: Option<i32>,
    height: Option<i32>,
    state: String,
    created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, channel_id, uploader_id, name, content_type, size, width, height, state, created_at";

impl From<Row> for Attachment {
    fn from(r: Row) -> Self {
        Attachment {
            id: r.id,
            channel_id: ChannelId(r.channel_id),
            uploader_id: UserId(r.uploader_id),
            name: r.name,
            content_type: r.content_type,
            size: u64::try_from(r.size).unwrap_or(0),
            width: r.width.and_then(|w| u32::try_from(w).ok()),
            height: r.height.and_then(|h| u32::try_from(h).ok()),
            // `orphaned` ones are on their way out; no caller sees them as ready.
            state: if r.state == "ready" {
                AttachmentState::Ready
            } else {
                AttachmentState::Pending
            },
            created_at: r.created_at,
        }
    }
}

/// What a new attachment declares.
pub struct NewAttachment<'a> {
    pub id: Uuid,
    pub channel: ChannelId,
    pub uploader: UserId,
    pub name: &'a str,
    pub content_type: &'a str,
    pub size: u64,
}

/// Create a pending attachment unless its uploader already has `max_pending` pending ones
/// (created within the last hour): `None` then. One transaction that first locks the uploader's
/// row, so two concurrent creates cannot both take the last place.
pub async fn create_pending(
    db: &PgPool,
    new: &NewAttachment<'_>,
    max_pending: i64,
) -> Result<Option<Attachment>, PgError> {
    let size = i64::try_from(new.size).map_err(|e| PgError::Decode(e.into()))?;
    let mut tx = db.begin().await?;
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
        .bind(new.uploader.0)
        .execute(&mut *tx)
        .await?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "INSERT INTO attachments (id, channel_id, uploader_id, name, content_type, size)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE (SELECT count(*) FROM attachments
                WHERE uploader_id = $3 AND state = 'pending'
                  AND created_at > now() - interval '{PENDING_COUNTED_FOR}') < $7
         RETURNING {COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.channel.0)
    .bind(new.uploader.0)
    .bind(new.name)
    .bind(new.content_type)
    .bind(size)
    .bind(max_pending)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(Attachment::from))
}

/// The attachment `id` of `channel` (`None`: no such attachment, or one of another channel).
/// Orphaned ones are not found.
pub async fn get(db: &PgPool, channel: ChannelId, id: Uuid) -> Result<Option<Attachment>, PgError> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM attachments
         WHERE id = $1 AND channel_id = $2 AND state <> 'orphaned'"
    ))
    .bind(id)
    .bind(channel.0)
    .fetch_optional(db)
    .await?;
    Ok(row.map(Attachment::from))
}

/// The channel on which a completed image's thumbnail job is announced (`LISTEN` by
/// `chat-media`; the payload is the attachment id).
pub const MEDIA_JOBS_CHANNEL: &str = "media_jobs";

/// Mark a checked upload `ready` with its dimensions (images). Images whose header could be
/// read (`dimensions` given) are queued for a thumbnail (`thumb_state` `queued`, announced on
/// [`MEDIA_JOBS_CHANNEL`]); a later complete leaves the thumbnail's state as it is.
/// Idempotent: a second complete stores the same values again and keeps the first completion
/// time. `None`: no such pending or ready attachment in `channel`.
pub async fn mark_ready(
    db: &PgPool,
    channel: ChannelId,
    id: Uuid,
    dimensions: Option<(u32, u32)>,
) -> Result<Option<Attachment>, PgError> {
    let (width, height) = match dimensions {
        Some((w, h)) => (i32::try_from(w).ok(), i32::try_from(h).ok()),
        None => (None, None),
    };
    let row: Option<(Row, bool)> = sqlx::query_as::<_, ReadyRow>(&format!(
        "UPDATE attachments
         SET state = 'ready', width = $3, height = $4, completed_at = coalesce(completed_at, now()),
             thumb_state = CASE WHEN state = 'pending' AND $5 THEN 'queued' ELSE thumb_state END
         WHERE id = $1 AND channel_id = $2 AND state IN ('pending', 'ready')
         RETURNING {COLUMNS}, thumb_state = 'queued' AS queued"
    ))
    .bind(id)
    .bind(channel.0)
    .bind(width)
    .bind(height)
    .bind(width.is_some() && height.is_some())
    .fetch_optional(db)
    .await?
    .map(|r| (r.row, r.queued));
    let Some((row, queued)) = row else {
        return Ok(None);
    };
    if queued {
        // After the commit above, so the worker woken finds the job. Lost only if PostgreSQL
        // fails between the two statements: the worker also looks for jobs every few seconds.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(MEDIA_JOBS_CHANNEL)
            .bind(id.to_string())
            .execute(db)
            .await?;
    }
    Ok(Some(row.into()))
}

#[derive(sqlx::FromRow)]
struct ReadyRow {
    #[sqlx(flatten)]
    row: Row,
    queued: bool,
}

/// The attachment `id` of `channel` as [`get`] finds it, with the state of its thumbnail.
pub async fn get_with_thumbnail(
    db: &PgPool,
    channel: ChannelId,
    id: Uuid,
) -> Result<Option<(Attachment, ThumbnailState)>, PgError> {
    let row: Option<ThumbRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, thumb_state FROM attachments
         WHERE id = $1 AND channel_id = $2 AND state <> 'orphaned'"
    ))
    .bind(id)
    .bind(channel.0)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.row.into(), thumbnail_state(&r.thumb_state))))
}

#[derive(sqlx::FromRow)]
struct ThumbRow {
    #[sqlx(flatten)]
    row: Row,
    thumb_state: String,
}

/// What a client is told of a `thumb_state`: a thumbnail to show, one on its way, or none.
fn thumbnail_state(stored: &str) -> ThumbnailState {
    match stored {
        "ready" => ThumbnailState::Ready,
        "queued" | "working" => ThumbnailState::Pending,
        _ => ThumbnailState::None,
    }
}

/// How many pending uploads `user` has that count against the limit (created within the
/// last hour).
pub async fn pending_count(db: &PgPool, user: UserId) -> Result<i64, PgError> {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM attachments
         WHERE uploader_id = $1 AND state = 'pending'
           AND created_at > now() - interval '{PENDING_COUNTED_FOR}'"
    ))
    .bind(user.0)
    .fetch_one(db)
    .await
}

/// Claim completed uploads for the message `message` that `uploader` sends to `channel`: all of
/// `ids` or none, and only while the uploader is a member (so a send refused for membership
/// claims nothing). Each must be the uploader's, of this channel, `ready`, and not carried by
/// another message; claiming again for the same message (a resend: its id is derived from the
/// sender and `client_msg_id`) returns them again and renews the claim's time. `None`: not all
/// of them qualify (the caller tells the client `invalid_attachment`). The answer is in the
/// order of `ids`. A claim whose message is never stored (its produce failed and the client
/// never sent it again) is released by the sweeper ([`crate::media::release_unsent_claims`]).
///
/// One statement: the rows are locked while counted, so two sends racing for one upload cannot
/// both have it (the second re-checks the row after the first's commit and finds it taken).
pub async fn claim(
    db: &PgPool,
    channel: ChannelId,
    uploader: UserId,
    message: MessageId,
    ids: &[Uuid],
) -> Result<Option<Vec<MessageAttachment>>, PgError> {
    if ids.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let rows: Vec<ClaimedRow> = sqlx::query_as(
        "WITH wanted AS (
             SELECT id FROM attachments
             WHERE id = ANY($1) AND channel_id = $2 AND uploader_id = $3 AND state = 'ready'
               AND (message_id IS NULL OR message_id = $4)
               AND EXISTS (SELECT 1 FROM memberships WHERE channel_id = $2 AND user_id = $3)
             FOR UPDATE
         )
         UPDATE attachments SET message_id = $4, claimed_at = now()
         WHERE id IN (SELECT id FROM wanted)
           AND (SELECT count(*) FROM wanted) = cardinality($1::uuid[])
         RETURNING id, name, content_type, size, width, height",
    )
    .bind(ids)
    .bind(channel.0)
    .bind(uploader.0)
    .bind(message.0)
    .fetch_all(db)
    .await?;
    if rows.len() != ids.len() {
        return Ok(None);
    }
    let mut by_id: std::collections::HashMap<Uuid, ClaimedRow> =
        rows.into_iter().map(|r| (r.id, r)).collect();
    Ok(ids
        .iter()
        .map(|id| by_id.remove(id).map(MessageAttachment::from))
        .collect())
}

/// Give back uploads claimed for `message` that it does not carry after all (a `client_msg_id`
/// reused with other files: the message is the first send's). Only `keep` stay claimed.
pub async fn release(
    db: &PgPool,
    message: MessageId,
    ids: &[Uuid],
    keep: &[Uuid],
) -> Result<u64, PgError> {
    let done = sqlx::query(
        "UPDATE attachments SET message_id = NULL, claimed_at = NULL
         WHERE id = ANY($1) AND message_id = $2 AND NOT (id = ANY($3))",
    )
    .bind(ids)
    .bind(message.0)
    .bind(keep)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The files of messages now stored: `(attachment, message)` pairs. Their claims are final
/// (never released by the sweeper). Called by the message server for every message it pushes,
/// replays included, before the batch is committed; idempotent. A file whose claim was released
/// meanwhile (its message reached the message server only after
/// `media.claimed_unsent_after_secs`) is claimed again if still free.
pub async fn mark_sent(db: &PgPool, files: &[(Uuid, MessageId)]) -> Result<u64, PgError> {
    let (ids, messages): (Vec<Uuid>, Vec<Uuid>) = files.iter().map(|(a, m)| (*a, m.0)).unzip();
    let done = sqlx::query(
        "UPDATE attachments AS a SET message_id = f.message_id, sent_at = now(),
                claimed_at = COALESCE(a.claimed_at, now())
         FROM unnest($1::uuid[], $2::uuid[]) AS f(id, message_id)
         WHERE a.id = f.id AND a.sent_at IS NULL
           AND (a.message_id = f.message_id OR (a.message_id IS NULL AND a.state = 'ready'))",
    )
    .bind(&ids)
    .bind(&messages)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The attachments of deleted messages: no longer downloadable (`get` does not find them);
/// the sweeper removes their objects and rows. Idempotent.
pub async fn orphan_of_messages(db: &PgPool, messages: &[MessageId]) -> Result<u64, PgError> {
    let ids: Vec<Uuid> = messages.iter().map(|m| m.0).collect();
    let done = sqlx::query(
        "UPDATE attachments SET state = 'orphaned'
         WHERE message_id = ANY($1) AND state <> 'orphaned'",
    )
    .bind(&ids)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: Uuid,
    name: String,
    content_type: String,
    size: i64,
    width: Option<i32>,
    height: Option<i32>,
}

impl From<ClaimedRow> for MessageAttachment {
    fn from(r: ClaimedRow) -> Self {
        stored(r.id, r.name, r.content_type, r.size, r.width, r.height)
    }
}

/// A message's attachment from the columns both stores keep it in (signed integers: neither
/// PostgreSQL nor CQL has unsigned ones).
pub(crate) fn stored(
    id: Uuid,
    name: String,
    content_type: String,
    size: i64,
    width: Option<i32>,
    height: Option<i32>,
) -> MessageAttachment {
    MessageAttachment {
        id,
        name,
        content_type,
        size: u64::try_from(size).unwrap_or(0),
        width: width.and_then(|w| u32::try_from(w).ok()),
        height: height.and_then(|h| u32::try_from(h).ok()),
    }
}
