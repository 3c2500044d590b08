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

#[derive(Clone)]
pub struct Presence {
    conn: ConnectionManager,
}

fn presence_key(u: UserId) -> String {
    format!("presence:{u}")
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
        Ok(Presence { conn })
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
        let key = format!("send:{}:{}", record.sender_id, record.client_msg_id);
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
}
