//! Channel activity for the directory: after a batch is stored, each of its channels' last
//! message time moves forward, in one coalesced statement per batch (not one per message).
//!
//! Best effort by design: the directory's order may lag, but a message must never wait on it.
//! A failure (or a statement slower than [`TIME_LIMIT`]) is logged and counted
//! (`chat_activity_errors_total`), never retried, and never fails the batch; the next message
//! of the channel moves the time again.

use chat_store::pg::PgPool;
use chat_types::{ChannelId, Message};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// How long a batch waits for its activity update at most (PostgreSQL slow or unreachable).
pub const TIME_LIMIT: Duration = Duration::from_millis(500);

/// Record the newest message time of each channel among `stored` (the batch's new messages).
pub async fn record(db: &PgPool, stored: &[(Message, i64)]) {
    let latest = latest_per_channel(stored.iter().map(|(m, _)| m));
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
        "could not record channel activity"
    );
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
}
