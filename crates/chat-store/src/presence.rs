//! Redis: the registry of which gateway each connected user is on, and the send claims that let
//! any gateway answer a resend with the original message.
//!
//! `presence:{user_id}` is a sorted set of gateway delivery URLs scored by the time (unix ms)
//! the entry stops being true. Gateways renew their entries on a heartbeat; a crashed gateway's
//! entries lapse by themselves, so nobody is reported on a dead gateway for longer than the TTL.
//! Redis keeps nothing on disk here: after a restart every gateway notices its marker key is gone
//! and registers all of its users again at once.

use chat_types::UserId;
use chat_types::bus::MessageRecord;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

pub use redis::RedisError;

/// How long a presence entry stays true without renewal.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);
/// How long a send claim is remembered: resends later than this create no duplicate in the
/// store either (message servers recognise the message id), but their ack is rebuilt.
pub const SEND_CLAIM_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a user's membership epoch is kept after their last leave. Gateways trust a cached
/// membership for much less (`membership_cache_secs`), so an expired epoch is never mistaken
/// for the one a cache entry was confirmed under.
pub const MEMBER_EPOCH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The answer to [`Presence::claim_send_as_member`].
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

#[derive(Clone)]
pub struct Presence {
    conn: ConnectionManager,
    claim_as_member: std::sync::Arc<redis::Script>,
}

fn presence_key(u: UserId) -> String {
    format!("presence:{u}")
}

/// `member-epoch:{user}` counts the user's leaves. The API moves it after every leave, before
/// answering; a gateway's cached memberships are valid only under the epoch they were confirmed in.
fn epoch_key(u: UserId) -> String {
    format!("member-epoch:{u}")
}

fn claim_key(record: &MessageRecord) -> String {
    format!("send:{}:{}", record.sender_id, record.client_msg_id)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Presence {
    pub async fn connect(cfg: &chat_common::config::RedisConfig) -> Result<Self, RedisError> {
        let client = redis::Client::open(cfg.url.as_str())?;
        let mgr_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(2)
            .set_max_delay(500);
        let conn = ConnectionManager::new_with_config(client, mgr_cfg).await?;
        Ok(Presence {
            conn,
            claim_as_member: std::sync::Arc::new(redis::Script::new(CLAIM_AS_MEMBER)),
        })
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    /// Record (or renew) that `users` are connected to the gateway reachable at `gateway_url`.
    /// One pipelined round trip however many users.
    pub async fn register(&self, gateway_url: &str, users: &[UserId]) -> Result<(), RedisError> {
        if users.is_empty() {
            return Ok(());
        }
        let until = now_ms() + PRESENCE_TTL.as_millis() as i64;
        let mut p = redis::pipe();
        for u in users {
            let k = presence_key(*u);
            p.zadd(&k, gateway_url, until).ignore();
            // Drop lapsed entries of other (dead) gateways while we are here.
            p.zrembyscore(&k, "-inf", now_ms()).ignore();
            p.pexpire(&k, 2 * PRESENCE_TTL.as_millis() as i64).ignore();
        }
        let mut c = self.conn.clone();
        p.query_async::<()>(&mut c).await
    }

    /// Remove `user`'s entry for this gateway (their last connection here closed).
    pub async fn unregister(&self, gateway_url: &str, users: &[UserId]) -> Result<(), RedisError> {
        if users.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for u in users {
            p.zrem(presence_key(*u), gateway_url).ignore();
        }
        let mut c = self.conn.clone();
        p.query_async::<()>(&mut c).await
    }

    /// The gateways each of `users` is connected to now (same order as `users`).
    pub async fn gateways_of(&self, users: &[UserId]) -> Result<Vec<Vec<String>>, RedisError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut p = redis::pipe();
        for u in users {
            p.zrangebyscore(presence_key(*u), now, "+inf");
        }
        let mut c = self.conn.clone();
        p.query_async(&mut c).await
    }

    /// Set this gateway's marker; [`Presence::marker_present`] turning false means Redis lost its
    /// data (restart) and every registration must be made again.
    pub async fn set_marker(&self, gateway_id: &str) -> Result<(), RedisError> {
        let mut c = self.conn.clone();
        c.set(format!("gateway-marker:{gateway_id}"), 1).await
    }

    pub async fn marker_present(&self, gateway_id: &str) -> Result<bool, RedisError> {
        let mut c = self.conn.clone();
        c.exists(format!("gateway-marker:{gateway_id}")).await
    }

    /// Claim `(sender, client_msg_id)` for `record`. Returns the record of the first claim when
    /// this is a resend (its body, channel and time win), `None` when this is the first send.
    pub async fn claim_send(
        &self,
        record: &MessageRecord,
    ) -> Result<Option<MessageRecord>, RedisError> {
        let key = claim_key(record);
        let value = serde_json::to_string(record).expect("records serialise");
        let mut c = self.conn.clone();
        let previous: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(SEND_CLAIM_TTL.as_millis() as u64)
            .query_async(&mut c)
            .await?;
        Ok(previous.and_then(|p| serde_json::from_str(&p).ok()))
    }

    /// The user's current membership epoch ("0" if they never left a channel, or long ago).
    pub async fn member_epoch(&self, user: UserId) -> Result<String, RedisError> {
        let mut c = self.conn.clone();
        let epoch: Option<String> = c.get(epoch_key(user)).await?;
        Ok(epoch.unwrap_or_else(|| "0".into()))
    }

    /// Move the user's membership epoch: every gateway's cached memberships of the user stop
    /// counting. Called after a leave is stored, before it is answered.
    pub async fn bump_member_epoch(&self, user: UserId) -> Result<(), RedisError> {
        let key = epoch_key(user);
        let mut p = redis::pipe();
        p.incr(&key, 1).ignore();
        p.pexpire(&key, MEMBER_EPOCH_TTL.as_millis() as i64)
            .ignore();
        let mut c = self.conn.clone();
        p.query_async::<()>(&mut c).await
    }

    /// [`Presence::claim_send`], but only if the sender's membership epoch is still `epoch`.
    pub async fn claim_send_as_member(
        &self,
        record: &MessageRecord,
        epoch: &str,
    ) -> Result<MemberClaim, RedisError> {
        let value = serde_json::to_string(record).expect("records serialise");
        let mut c = self.conn.clone();
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
