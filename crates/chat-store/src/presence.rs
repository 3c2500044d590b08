//! Redis: the registry of which gateway each connected user is on.
//!
//! `presence:{user_id}` is a sorted set of gateway delivery URLs scored by the time (unix ms)
//! the entry stops being true. Gateways renew their entries on a heartbeat; a crashed gateway's
//! entries lapse by themselves, so nobody is reported on a dead gateway for longer than the TTL.
//! Redis keeps nothing on disk here: after a restart every gateway notices its marker key is gone
//! and registers all of its users again at once.

use crate::redis_conn::{Redis, RedisError};
use chat_types::UserId;
use redis::AsyncCommands;
use std::time::Duration;

/// How long a presence entry stays true without renewal.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Presence {
    redis: Redis,
}

fn presence_key(u: UserId) -> String {
    format!("presence:{u}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Presence {
    pub fn new(redis: Redis) -> Self {
        Presence { redis }
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        self.redis.ping().await
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
        let mut c = self.redis.conn();
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
        let mut c = self.redis.conn();
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
        let mut c = self.redis.conn();
        p.query_async(&mut c).await
    }

    /// Set this gateway's marker; [`Presence::marker_present`] turning false means Redis lost its
    /// data (restart) and every registration must be made again.
    pub async fn set_marker(&self, gateway_id: &str) -> Result<(), RedisError> {
        let mut c = self.redis.conn();
        c.set(format!("gateway-marker:{gateway_id}"), 1).await
    }

    pub async fn marker_present(&self, gateway_id: &str) -> Result<bool, RedisError> {
        let mut c = self.redis.conn();
        c.exists(format!("gateway-marker:{gateway_id}")).await
    }
}
