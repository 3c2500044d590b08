//! Redis: each user's membership epoch. `member-epoch:{user}` counts the user's leaves; the API
//! moves it after every leave, before answering, and a gateway's cached memberships of the user
//! are valid only under the epoch they were confirmed in (see [`crate::claims`]).

use crate::redis_conn::{Redis, RedisError};
use chat_types::UserId;
use redis::AsyncCommands;
use std::time::Duration;

/// How long a user's membership epoch is kept after their last leave. Gateways trust a cached
/// membership for much less (`membership_cache_secs`), so an expired epoch is never mistaken
/// for the one a cache entry was confirmed under.
pub const MEMBER_EPOCH_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) fn epoch_key(u: UserId) -> String {
    format!("member-epoch:{u}")
}

#[derive(Clone)]
pub struct MemberEpochs {
    redis: Redis,
}

impl MemberEpochs {
    pub fn new(redis: Redis) -> Self {
        MemberEpochs { redis }
    }

    /// The user's current membership epoch ("0" if they never left a channel, or long ago).
    pub async fn current(&self, user: UserId) -> Result<String, RedisError> {
        let mut c = self.redis.conn();
        let epoch: Option<String> = c.get(epoch_key(user)).await?;
        Ok(epoch.unwrap_or_else(|| "0".into()))
    }

    /// Move the user's membership epoch: every gateway's cached memberships of the user stop
    /// counting. Called after a leave is stored, before it is answered.
    pub async fn bump(&self, user: UserId) -> Result<(), RedisError> {
        let key = epoch_key(user);
        let mut p = redis::pipe();
        p.incr(&key, 1).ignore();
        p.pexpire(&key, MEMBER_EPOCH_TTL.as_millis() as i64)
            .ignore();
        let mut c = self.redis.conn();
        p.query_async::<()>(&mut c).await
    }
}
