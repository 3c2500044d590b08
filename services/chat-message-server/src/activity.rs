//! Channel activity for the directory: each channel's last message time moves forward. Batches
//! only note their channels' newest times ([`Activity::note`]); every [`FLUSH_EVERY`] one
//! statement writes all that were noted since the last write, once per channel, however many
//! batches and messages they had.
//!
//! Why not one statement per batch: a channel's time is an indexed column (the directory's
//! activity order), so each write is a new row version with an entry in every index of its
//! table. When the time was a column of `channels` (six indexes) that cost 0.31 ms of
//! PostgreSQL's execution per batch, the costliest statement of a message's path; it now has a
//! narrow table of its own (`channel_activity`, two indexes), and one statement per
//! [`FLUSH_EVERY`] still writes each channel once however many batches it had
//! (docs/benchmarks.md, issue 14).
//!
//! Best effort by design: the directory's order may lag by up to [`FLUSH_EVERY`] plus a write,
//! but a message never waits on it. A failure (or a write slower than [`TIME_LIMIT`]) is
//! logged and counted (`chat_activity_errors_total`) and its times are noted again, to be
//! written with the next flush (unless newer ones came meanwhile).

use chat_store::pg::PgPool;
use chat_types::{ChannelId, Message};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a write waits for PostgreSQL at most (slow or unreachable).
pub const TIME_LIMIT: Duration = Duration::from_millis(500);

/// How often the noted times are written. Measured at 200-400 msg/s in groups of 10: once per
/// batch PostgreSQL took 34-39 % of a core, every 200 ms 28-32 %; once a second 25-30 %, but
/// each write then held PostgreSQL long enough to show in the delivery tail.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The channels' newest message times noted and not yet written. Clones share them.
#[derive(Clone, Default)]
pub struct Activity {
    pending: Arc<Mutex<HashMap<ChannelId, DateTime<Utc>>>>,
}

impl Activity {
    /// Note the newest message time of each channel among `stored` (a batch's new messages).
    pub fn note(&self, stored: &[(Message, i64)]) {
        if stored.is_empty() {
            return;
        }
        self.merge(latest_per_channel(stored.iter().map(|(m, _)| m)));
    }

    fn merge(&self, times: impl IntoIterator<Item = (ChannelId, DateTime<Utc>)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (c, t) in times {
            pending
                .entry(c)
                .and_modify(|p| *p = (*p).max(t))
                .or_insert(t);
        }
    }

    /// Write everything noted so far, in one statement.
    pub async fn flush(&self, db: &PgPool) {
        let latest: Vec<(ChannelId, DateTime<Utc>)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if latest.is_empty() {
            return;
        }
        let update = chat_store::directory::record_activity(db, &latest);
        let error = match tokio::time::timeout(TIME_LIMIT, update).await {
            Ok(Ok(moved)) => {
                metrics::counter!("chat_activity_updates_total").increment(moved);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {TIME_LIMIT:?}"),
        };
        metrics::counter!("chat_activity_errors_total").increment(1);
        tracing::warn!(
            error,
            channels = latest.len(),
            "could not record channel activity; trying again with the next write"
        );
        self.merge(latest);
    }

    /// Write what was noted every [`FLUSH_EVERY`] until `shutdown` (the consume loop writes
    /// the last batch's times itself once it has published it).
    pub async fn run(self, db: PgPool, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.flush(&db).await,
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Each channel once, with the latest `created_at` of its messages.
fn latest_per_channel<'a>(
    messages: impl Iterator<Item = &'a Message>,
) -> Vec<(ChannelId, DateTime<Utc>)> {
    let mut latest: HashMap<ChannelId, DateTime<Utc>> = HashMap::new();
    for m in messages {
        latest
            .entry(m.channel_id)
            .and_modify(|t| *t = (*t).max(m.created_at))
            .or_insert(m.created_at);
    }
    latest.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_types::{MessageId, UserId};
    use uuid::Uuid;

    fn msg(channel: u128, secs: i64) -> Message {
        Message::new(
            MessageId(Uuid::from_u128(secs as u128)),
            ChannelId(Uuid::from_u128(channel)),
            UserId(Uuid::from_u128(7)),
            "x".into(),
            format!("c{secs}"),
            DateTime::from_timestamp(secs, 0).unwrap(),
            Some(1),
        )
    }

    #[test]
    fn each_channel_is_written_once_with_its_newest_time() {
        // Out of order within the batch: the newest wins, whatever its place.
        let batch = [msg(1, 10), msg(2, 5), msg(1, 30), msg(1, 20)];
        let mut latest = latest_per_channel(batch.iter());
        latest.sort();
        assert_eq!(
            latest,
            vec![
                (
                    ChannelId(Uuid::from_u128(1)),
                    DateTime::from_timestamp(30, 0).unwrap()
                ),
                (
                    ChannelId(Uuid::from_u128(2)),
                    DateTime::from_timestamp(5, 0).unwrap()
                ),
            ]
        );
        assert!(latest_per_channel([].iter()).is_empty());
    }

    #[test]
    fn notes_of_several_batches_keep_each_channels_newest_time() {
        let activity = Activity::default();
        activity.note(&[(msg(1, 30), 0), (msg(2, 5), 1)]);
        // A later batch with an older time for channel 1 (another partition's replay).
        activity.note(&[(msg(1, 20), 2), (msg(2, 9), 3)]);
        let mut pending: Vec<_> = activity
            .pending
            .lock()
            .unwrap()
            .clone()
            .into_iter()
            .collect();
        pending.sort();
        let at = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(
            pending,
            vec![
                (ChannelId(Uuid::from_u128(1)), at(30)),
                (ChannelId(Uuid::from_u128(2)), at(9)),
            ]
        );
    }
}
