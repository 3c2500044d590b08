//! Redis: send claims. The first send of `(sender, client_msg_id)` through any gateway claims
//! the pair; a resend finds the claim and is acked with the original message (its body, channel
//! and time), so a client that resends after a lost ack never sees two versions of one message.

use crate::epochs::epoch_key;
use crate::redis_conn::{Redis, RedisError};
use chat_types::bus::MessageRecord;
use std::sync::Arc;
use std::time::Duration;

/// How long a send claim is remembered: resends later than this create no duplicate in the
/// store either (message servers recognise the message id), but their ack is rebuilt.
pub const SEND_CLAIM_TTL: Duration = Duration::from_secs(24 * 3600);

/// The answer to [`SendClaims::claim_as_member`].
#[derive(Debug)]
pub enum MemberClaim {
    /// The epoch still holds; the send claim was taken (`None`) or an earlier send of the same
    /// `client_msg_id` was found (`Some`).
    Claimed(Option<MessageRecord>),
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

fn claim_key(record: &MessageRecord) -> String {
    format!("send:{}:{}", record.sender_id, record.client_msg_id)
}

#[derive(Clone)]
pub struct SendClaims {
    redis: Redis,
    claim_as_member: Arc<redis::Script>,
}

impl SendClaims {
    pub fn new(redis: Redis) -> Self {
        SendClaims {
            redis,
            claim_as_member: Arc::new(redis::Script::new(CLAIM_AS_MEMBER)),
        }
    }

    /// Claim `(sender, client_msg_id)` for `record`. Returns the record of the first claim when
    /// this is a resend (its body, channel and time win), `None` when this is the first send.
    pub async fn claim(&self, record: &MessageRecord) -> Result<Option<MessageRecord>, RedisError> {
        let value = serde_json::to_string(record).expect("records serialise");
        let mut c = self.redis.conn();
        let previous: Option<String> = redis::cmd("SET")
            .arg(claim_key(record))
            .arg(&value)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(SEND_CLAIM_TTL.as_millis() as u64)
            .query_async(&mut c)
            .await?;
        Ok(previous.and_then(|p| serde_json::from_str(&p).ok()))
    }

    /// [`SendClaims::claim`], but only if the sender's membership epoch is still `epoch`.
    pub async fn claim_as_member(
        &self,
        record: &MessageRecord,
        epoch: &str,
    ) -> Result<MemberClaim, RedisError> {
        let value = serde_json::to_string(record).expect("records serialise");
        let mut c = self.redis.conn();
        let reply: Vec<redis::Value> = self
            .claim_as_member
            .key(epoch_key(record.sender_id))
            .key(claim_key(record))
            .arg(epoch)
            .arg(&value)
            .arg(SEND_CLAIM_TTL.as_millis() as u64)
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
                text(reply.get(1)).and_then(|p| serde_json::from_str(&p).ok()),
            )),
            _ => Ok(MemberClaim::Stale(
                text(reply.get(1)).unwrap_or_else(|| "0".into()),
            )),
        }
    }
}
