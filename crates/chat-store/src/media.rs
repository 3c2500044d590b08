//! PostgreSQL: the work `chat-media` takes from the `attachments` table (issue #16).
//!
//! - **Thumbnail jobs**: a completed image is `thumb_state = 'queued'`
//!   ([`crate::attachments::mark_ready`]). A worker takes a few at a time with `FOR UPDATE SKIP
//!   LOCKED` (several workers never take the same one), marks them `working` with a lease, and
//!   ends each as `ready` (a thumbnail is stored) or `none` (not decodable). A worker that dies
//!   mid-job leaves its lease to lapse; the next take picks the job up again.
//! - **The sweeper**: uploads never completed (`pending` past `pending_after`), completed but
//!   never sent (`ready` with no message past `unsent_after`) and those of deleted messages
//!   (already `orphaned` by the message server) lose their objects, then their rows. Marking
//!   comes first, in one statement that re-checks `message_id IS NULL` under the row lock, so a
//!   send claiming an upload at that moment either wins (the row is not swept) or finds it gone
//!   (`invalid_attachment`).
//! - **Claims never sent**: a gateway claims a send's files before producing it to Kafka. If
//!   the produce fails and the client never sends that message again, the claim names a message
//!   that does not exist, and the upload could neither be sent again nor be swept. Claims whose
//!   message the message servers have not stored (`sent_at`) after `claimed_after` are released
//!   ([`release_unsent_claims`]); the upload is then swept like any unsent one.
//!
//! Schema: `migrations/postgres/0009_attachments.sql` (columns and the queue's index),
//! `0011_attachment_sweeper.sql` (the index of orphaned rows), `0012_attachment_claims.sql`
//! (claim and send times, the index of unsent claims).

use crate::pg::{PgError, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// A thumbnail to make: the attachment's id and declared type.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ThumbnailJob {
    pub id: Uuid,
    pub content_type: String,
    pub size: i64,
}

/// Take up to `limit` thumbnail jobs, oldest completion first: queued ones, and working ones
/// whose lease lapsed (a worker died). Each is leased for `lease`.
pub async fn take_thumbnail_jobs(
    db: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ThumbnailJob>, PgError> {
    sqlx::query_as(
        "UPDATE attachments SET thumb_state = 'working',
                thumb_lease = now() + make_interval(secs => $2)
         WHERE id IN (
             SELECT id FROM attachments
             WHERE (thumb_state = 'queued' OR (thumb_state = 'working' AND thumb_lease < now()))
               AND state <> 'orphaned'
             ORDER BY completed_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         RETURNING id, content_type, size",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await
}

/// End a taken job: `made` (the thumbnail is stored) or not (none will ever be). Only a job
/// still `working` changes, so a late worker whose lease lapsed and whose job was finished by
/// another changes nothing.
pub async fn finish_thumbnail(db: &PgPool, id: Uuid, made: bool) -> Result<bool, PgError> {
    let done = sqlx::query(
        "UPDATE attachments SET thumb_state = $2, thumb_lease = NULL
         WHERE id = $1 AND thumb_state = 'working'",
    )
    .bind(id)
    .bind(if made { "ready" } else { "none" })
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Mark up to `limit` uploads as orphaned that will never be sent: `pending` ones created
/// more than `pending_after` ago, and `ready` ones no message claimed within `unsent_after`.
/// Returns how many were marked.
pub async fn orphan_abandoned(
    db: &PgPool,
    pending_after: Duration,
    unsent_after: Duration,
    limit: i64,
) -> Result<u64, PgError> {
    let done = sqlx::query(
        "UPDATE attachments SET state = 'orphaned'
         WHERE id IN (
             SELECT id FROM attachments
             WHERE message_id IS NULL
               AND ((state = 'pending' AND created_at < now() - make_interval(secs => $1))
                 OR (state = 'ready' AND created_at < now() - make_interval(secs => $2)))
             ORDER BY created_at
             LIMIT $3
             FOR UPDATE SKIP LOCKED)
           AND message_id IS NULL",
    )
    .bind(pending_after.as_secs_f64())
    .bind(unsent_after.as_secs_f64())
    .bind(limit)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Release up to `limit` claims made more than `claimed_after` ago whose message was never
/// stored: the upload is free again (and, once old enough, swept as unsent). The outer
/// statement re-checks `sent_at` under the row lock, so a message server storing the message at
/// that moment either marks it first (the claim stays) or finds it free and claims it again
/// ([`crate::attachments::mark_sent`]). Returns how many were released.
pub async fn release_unsent_claims(
    db: &PgPool,
    claimed_after: Duration,
    limit: i64,
) -> Result<u64, PgError> {
    let done = sqlx::query(
        "UPDATE attachments SET message_id = NULL, claimed_at = NULL
         WHERE id IN (
             SELECT id FROM attachments
             WHERE message_id IS NOT NULL AND sent_at IS NULL
               AND claimed_at < now() - make_interval(secs => $1)
             ORDER BY claimed_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
           AND sent_at IS NULL",
    )
    .bind(claimed_after.as_secs_f64())
    .bind(limit)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Up to `limit` orphaned attachments, whose objects are to be deleted.
pub async fn orphaned(db: &PgPool, limit: i64) -> Result<Vec<Uuid>, PgError> {
    sqlx::query_scalar("SELECT id FROM attachments WHERE state = 'orphaned' LIMIT $1")
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Forget orphaned attachments whose objects are deleted.
pub async fn forget_orphaned(db: &PgPool, ids: &[Uuid]) -> Result<u64, PgError> {
    let done = sqlx::query("DELETE FROM attachments WHERE id = ANY($1) AND state = 'orphaned'")
        .bind(ids)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Wakes a worker when a thumbnail job is queued
/// ([`crate::attachments::MEDIA_JOBS_CHANNEL`]): `LISTEN` on a connection of its own.
pub struct JobSignals(sqlx::postgres::PgListener);

impl JobSignals {
    pub async fn listen(db: &PgPool) -> Result<JobSignals, PgError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(db).await?;
        listener
            .listen(crate::attachments::MEDIA_JOBS_CHANNEL)
            .await?;
        Ok(JobSignals(listener))
    }

    /// The next signal. A lost connection is an error once (signals sent meanwhile are lost:
    /// workers also look for jobs on a timer); the next call connects again.
    pub async fn next(&mut self) -> Result<(), PgError> {
        self.0.recv().await.map(|_| ())
    }
}
