//! Redis pub/sub: read marks on their way to a user's other devices. A gateway that accepted
//! marks publishes them in one message per short interval on [`READ_MARKS_CHANNEL`]; every
//! gateway subscribes ([`ReadMarkFeed`]) and passes each mark to the local connections of its
//! user. Nothing is kept here: the durable mark is PostgreSQL's ([`crate::read_state`]), and a
//! device that missed an announcement (its gateway was resubscribing) reads it from
//! `GET /api/v1/channels` when it next lists conversations.

use crate::redis_conn::{Redis, RedisError};
use chat_types::{ChannelId, UserId};
use futures::StreamExt;
use std::time::Duration;

/// The pub/sub channel read marks are announced on.
pub const READ_MARKS_CHANNEL: &str = "read-marks";

/// `user` has read `channel` up to position `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    pub user: UserId,
    pub channel: ChannelId,
    pub seq: i64,
}

/// Marks announced together by one gateway (`origin`: its id, so it skips its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMarkBatch {
    pub origin: String,
    pub marks: Vec<ReadMark>,
}

impl ReadMarkBatch {
    /// One line for the origin, then one `user channel seq` line per mark.
    fn encode(&self) -> String {
        let mut s = String::with_capacity(self.origin.len() + 1 + self.marks.len() * 94);
        s.push_str(&self.origin);
        for m in &self.marks {
            s.push('\n');
            s.push_str(&format!("{} {} {}", m.user, m.channel, m.seq));
        }
        s
    }

    /// `None` for a payload that is not a batch (a malformed line spoils the whole message:
    /// it was not written by a gateway).
    fn decode(payload: &str) -> Option<ReadMarkBatch> {
        let mut lines = payload.split('\n');
        let origin = lines.next()?.to_owned();
        let marks = lines
            .map(|line| {
                let mut f = line.split(' ');
                let mark = ReadMark {
                    user: UserId(f.next()?.parse().ok()?),
                    channel: ChannelId(f.next()?.parse().ok()?),
                    seq: f.next()?.parse().ok()?,
                };
                f.next().is_none().then_some(mark)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ReadMarkBatch { origin, marks })
    }
}

#[derive(Clone)]
pub struct ReadMarkAnnouncer {
    redis: Redis,
}

impl ReadMarkAnnouncer {
    pub fn new(redis: Redis) -> Self {
        ReadMarkAnnouncer { redis }
    }

    /// Announce `batch` to every gateway (one `PUBLISH`).
    pub async fn announce(&self, batch: &ReadMarkBatch) -> Result<(), RedisError> {
        if batch.marks.is_empty() {
            return Ok(());
        }
        let mut c = self.redis.conn();
        redis::cmd("PUBLISH")
            .arg(READ_MARKS_CHANNEL)
            .arg(batch.encode())
            .query_async::<()>(&mut c)
            .await
    }
}

/// A subscription to [`READ_MARKS_CHANNEL`]; it ends when its connection does (subscribe again).
pub struct ReadMarkFeed {
    stream: redis::aio::PubSubStream,
}

impl ReadMarkFeed {
    pub async fn subscribe(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let stream = crate::redis_conn::subscribe(url, READ_MARKS_CHANNEL, timeout).await?;
        Ok(ReadMarkFeed { stream })
    }

    /// The next batch; `None` once the connection ended.
    pub async fn next(&mut self) -> Option<ReadMarkBatch> {
        loop {
            let msg = self.stream.next().await?;
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            match ReadMarkBatch::decode(&payload) {
                Some(b) => return Some(b),
                None => tracing::warn!(len = payload.len(), "ignoring a malformed read-mark batch"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn batches_round_trip_and_garbage_is_refused() {
        let b = ReadMarkBatch {
            origin: "gw-1".into(),
            marks: vec![
                ReadMark {
                    user: UserId(Uuid::now_v7()),
                    channel: ChannelId(Uuid::now_v7()),
                    seq: 42,
                },
                ReadMark {
                    user: UserId(Uuid::now_v7()),
                    channel: ChannelId(Uuid::now_v7()),
                    seq: 1,
                },
            ],
        };
        assert_eq!(ReadMarkBatch::decode(&b.encode()), Some(b.clone()));
        let empty = ReadMarkBatch {
            origin: "gw-2".into(),
            marks: vec![],
        };
        assert_eq!(ReadMarkBatch::decode(&empty.encode()), Some(empty));
        let line = format!("{} {} 3", b.marks[0].user, b.marks[0].channel);
        for bad in [
            format!("gw\n{line} extra"),
            format!("gw\n{} x 3", b.marks[0].user),
            "gw\nnope".to_owned(),
            format!("gw\n{line}\n"),
        ] {
            assert_eq!(ReadMarkBatch::decode(&bad), None, "{bad:?}");
        }
    }
}
