//! The sweeper: uploads that will never be seen again lose their objects (file and
//! thumbnail, one DeleteObjects request per batch), then their rows. Which ones, and why that
//! cannot race a send, is [`chat_store::media`]'s to say.

use chat_store::media;
use chat_store::objects::{Objects, file_key, thumbnail_key};
use chat_store::pg::PgPool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Sweeper {
    pub db: PgPool,
    pub objects: Objects,
    pub every: Duration,
    /// Uploads not completed this long after their creation are abandoned.
    pub pending_after: Duration,
    /// Completed uploads no message carries this long after their creation are abandoned.
    pub unsent_after: Duration,
    /// Claims by a send whose message was not stored this long after the claim are released.
    pub claimed_unsent_after: Duration,
    /// Attachments per statement and per DeleteObjects request (two keys each: at most 500).
    pub batch: usize,
}

/// Sweep every `every` until `shutdown`.
pub async fn run(s: Sweeper, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(s.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        match sweep(&s, &shutdown).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "swept attachments"),
            Err(e) => tracing::warn!(error = %e, "sweep failed; trying again next time"),
        }
    }
}

/// One sweep: release claims never sent, mark the abandoned, then remove every orphaned
/// attachment. How many were removed.
pub async fn sweep(s: &Sweeper, shutdown: &CancellationToken) -> anyhow::Result<u64> {
    let batch = s.batch as i64;
    loop {
        let released = media::release_unsent_claims(&s.db, s.claimed_unsent_after, batch).await?;
        if released > 0 {
            metrics::counter!("chat_media_claims_released_total").increment(released);
            tracing::info!(released, "released claims of messages never stored");
        }
        if released < s.batch as u64 || shutdown.is_cancelled() {
            break;
        }
    }
    while media::orphan_abandoned(&s.db, s.pending_after, s.unsent_after, batch).await?
        == s.batch as u64
    {
        if shutdown.is_cancelled() {
            break;
        }
    }
    let mut removed = 0;
    while !shutdown.is_cancelled() {
        let ids = media::orphaned(&s.db, batch).await?;
        if ids.is_empty() {
            break;
        }
        let keys: Vec<String> = ids
            .iter()
            .flat_map(|id| [file_key(*id), thumbnail_key(*id)])
            .collect();
        s.objects.delete_many(&keys).await?;
        let n = media::forget_orphaned(&s.db, &ids).await?;
        metrics::counter!("chat_media_swept_total").increment(n);
        removed += n;
        if ids.len() < s.batch {
            break;
        }
    }
    Ok(removed)
}
