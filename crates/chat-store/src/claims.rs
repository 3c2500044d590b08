//! Redis: send claims. The first send of `(sender, client_msg_id)` through any gateway claims
//! the pair; a resend finds the claim and is acked with the original message (its body, channel
//! and time), so a client that resends after a lost ack never sees two versions of one message.
//!
//! A claim keeps only what a resend needs, not the message: the channel, the time and a digest
//! of the body (~60 bytes of value, whatever the body's size). A resend whose channel and body
//! digest agree is the same message with the first send's time; one that differs (a client
//! reusing a `client_msg_id` for something else) is answered from the store by the caller.
//! Sizing: see "Redis" in `docs/operations.md`.

use crate::epochs::epoch_key;
use crate::redis_conn::{Redis, RedisError};
use chat_types::bus::MessageRecord;
use chat_types::{ChannelId, MessageId};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// What a claim remembers of the first send of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstSend {
    pub channel_id: ChannelId,
    pub created_at: DateTime<Utc>,
    digest: u64,
}

impl FirstSend {
    pub fn of(record: &MessageRecord) -> Self {
        FirstSend {
            channel_id: record.channel_id,
            created_at: record.created_at,
            digest: content_digest(record),
        }
    }

    /// The first send's record if `resend` is the same message (same channel, body and
    /// attachments): then
    /// only the time differs, and the first one's wins. `None`: it is not the same message.
    pub fn same_message(&self, resend: &MessageRecord) -> Option<MessageRecord> {
        (self.channel_id == resend.channel_id && self.digest == content_digest(resend)).then(|| {
            MessageRecord {
                created_at: self.created_at,
                ..resend.clone()
            }
        })
    }

    fn encode(&self) -> String {
        format!(
            "{}:{}:{:016x}",
            self.channel_id.0.simple(),
            self.created_at.timestamp_millis(),
            self.digest
        )
    }

    fn decode(s: &str) -> Option<Self> {
        let mut parts = s.split(':');
        let channel = uuid::Uuid::try_parse(parts.next()?).ok()?;
        let millis: i64 = parts.next()?.parse().ok()?;
        let digest = u64::from_str_radix(parts.next()?, 16).ok()?;
        Some(FirstSend {
            channel_id: ChannelId(channel),
            created_at: DateTime::from_timestamp_millis(millis)?,
            digest,
        })
    }
}

/// 64 bits of SHA-256: a stable digest (the same in every gateway and version), and a chance
/// collision only makes a reused `client_msg_id` look like a resend of the same body.
/// What a message says: its body, then the ids of its attachments, if any. A message without
/// attachments digests exactly as before attachments existed (claims made by older gateways
/// still match).
fn content_digest(record: &MessageRecord) -> u64 {
    let mut h = Sha256::new();
    h.update(record.body.as_bytes());
    for a in &record.attachments {
        // A body crafted to end like this only makes a reused `client_msg_id` look like a
        // resend of the same message: the same harm as a 64-bit collision, to the sender only.
        h.update([0u8]);
        h.update(a.id.as_bytes());
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The answer to [`SendClaims::claim_as_member`].
#[derive(Debug)]
pub enum MemberClaim {
    /// The epoch still holds; the send claim was taken (`None`) or an earlier send of the same
    /// `client_msg_id` was found (`Some`).
    Claimed(Option<FirstSend>),
    /// The user left a channel since: the cached membership must be checked again. Carries the
    /// current epoch. No claim was taken.
    Stale(String),
}

/// Check the user's membership epoch and, only if it is the expected one, take the send claim:
/// one round trip and atomic, so a leave cannot slip in between the two.
const CLAIM_AS_MEMBER: &str = r"
local epoch = redis.call('GET', KEYS[1]) or '0'
if epoch ~= ARGV[1] then return {0, epoch} end
local previous = redis.call('SET', KEYS[2], ARGV[2], 'NX', 'GET', 'PX', ARGV[3])
if previous then return {1, previous} end
return {1}
";

/// The message id is derived from `(sender, client_msg_id)`: a shorter key naming the same pair.
fn claim_key(id: MessageId) -> String {
    format!("claim:{}", id.0.simple())
}

#[derive(Clone)]
pub struct SendClaims {
    redis: Redis,
    /// How long a claim is remembered: resends later than this create no duplicate in the
    /// store either (message servers recognise the message id), but their ack is rebuilt.
    ttl: Duration,
    claim_as_member: Arc<redis::Script>,
}

impl SendClaims {
    pub fn new(redis: Redis, ttl: Duration) -> Self {
        SendClaims {
            redis,
            ttl,
            claim_as_member: Arc::new(redis::Script::new(CLAIM_AS_MEMBER)),
        }
    }

    /// Claim `(sender, client_msg_id)` for `record`. Returns what the first claim remembers when
    /// this is a resend, `None` when this is the first send.
    pub async fn claim(&self, record: &MessageRecord) -> Result<Option<FirstSend>, RedisError> {
        let value = FirstSend::of(record).encode();
        let mut c = self.redis.conn();
        let previous: Option<String> = redis::cmd("SET")
            .arg(claim_key(record.id))
            .arg(&value)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .query_async(&mut c)
            .await?;
        Ok(previous.as_deref().and_then(FirstSend::decode))
    }

    /// [`SendClaims::claim`], but only if the sender's membership epoch is still `epoch`.
    pub async fn claim_as_member(
        &self,
        record: &MessageRecord,
        epoch: &str,
    ) -> Result<MemberClaim, RedisError> {
        let value = FirstSend::of(record).encode();
        let mut c = self.redis.conn();
        let reply: Vec<redis::Value> = self
            .claim_as_member
            .key(epoch_key(record.sender_id))
            .key(claim_key(record.id))
            .arg(epoch)
            .arg(&value)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        let text = |v: Option<&redis::Value>| -> Option<String> {
            v.and_then(|v| redis::from_redis_value::<String>(v).ok())
        };
        match reply
            .first()
            .and_then(|v| redis::from_redis_value::<i64>(v).ok())
        {
            Some(1) => Ok(MemberClaim::Claimed(
                text(reply.get(1)).as_deref().and_then(FirstSend::decode),
            )),
            _ => Ok(MemberClaim::Stale(
                text(reply.get(1)).unwrap_or_else(|| "0".into()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_types::UserId;

    fn record(body: &str, channel: u128) -> MessageRecord {
        let sender = UserId(uuid::Uuid::from_u128(1));
        MessageRecord {
            id: MessageId::derive(sender, "c1"),
            channel_id: ChannelId(uuid::Uuid::from_u128(channel)),
            sender_id: sender,
            body: body.into(),
            client_msg_id: "c1".into(),
            created_at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            reply_to: None,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn a_claim_is_small_whatever_the_body_and_reads_back() {
        let first = record(&"x".repeat(64 * 1024), 2);
        let claim = FirstSend::of(&first);
        let encoded = claim.encode();
        assert!(encoded.len() <= 64, "{} bytes", encoded.len());
        assert_eq!(FirstSend::decode(&encoded), Some(claim));
        assert_eq!(FirstSend::decode("garbage"), None);
    }

    #[test]
    fn a_resend_of_the_same_message_gets_the_first_time_and_another_message_does_not_match() {
        let first = record("hello", 2);
        let claim = FirstSend::of(&first);
        let mut resend = record("hello", 2);
        resend.created_at = DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
        assert_eq!(claim.same_message(&resend), Some(first));
        assert_eq!(claim.same_message(&record("hullo", 2)), None);
        assert_eq!(claim.same_message(&record("hello", 3)), None);
    }

    #[test]
    fn files_are_part_of_the_message_and_a_message_without_files_digests_as_before() {
        // The digest of a body alone is SHA-256's first 8 bytes, as gateways before
        // attachments wrote it: their claims still match.
        let plain = record("hello", 2);
        let old = u64::from_be_bytes(Sha256::digest(b"hello")[..8].try_into().unwrap());
        assert_eq!(FirstSend::of(&plain).digest, old);
        let file = |n: u128| chat_types::attachments::MessageAttachment {
            id: uuid::Uuid::from_u128(n),
            name: "a.png".into(),
            content_type: "image/png".into(),
            size: 1,
            width: None,
            height: None,
        };
        let mut with_file = record("hello", 2);
        with_file.attachments = vec![file(7)];
        let claim = FirstSend::of(&with_file);
        assert_eq!(claim.same_message(&with_file), Some(with_file.clone()));
        assert_eq!(claim.same_message(&plain), None, "the file is missing");
        let mut other_file = with_file.clone();
        other_file.attachments = vec![file(8)];
        assert_eq!(claim.same_message(&other_file), None, "another file");
    }
}
