//! Redis: revoked sessions. A session is a refresh-token family; every access token issued in
//! it carries its id (`sid`). Logging out, or presenting a refresh token that was already
//! rotated away, revokes the session:
//! - `revoked-session:{sid}` is set, expiring after the longest access-token lifetime (by then
//!   every token of the session has expired anyway): the API checks it on every authenticated
//!   request and a gateway at every upgrade (one `EXISTS`);
//! - a message on the `session-revoked` channel names the user and the session: every gateway
//!   subscribes ([`RevocationFeed`]) and closes that session's live sockets (4401) at once.
//!
//! A gateway that was not subscribed for a while (Redis restarted, the connection dropped)
//! checks the sessions of all its sockets once it is subscribed again
//! ([`Revocations::revoked_among`]), so a message it missed costs only the reconnect time.

use crate::redis_conn::{Redis, RedisError};
use chat_types::UserId;
use futures::StreamExt;
use redis::AsyncCommands;
use std::time::Duration;
use uuid::Uuid;

/// The pub/sub channel revocations are announced on.
pub const REVOKED_CHANNEL: &str = "session-revoked";

fn revoked_key(sid: Uuid) -> String {
    format!("revoked-session:{sid}")
}

/// A session was revoked: close its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    pub user: UserId,
    pub sid: Uuid,
}

impl Revoked {
    fn encode(&self) -> String {
        format!("{} {}", self.user, self.sid)
    }

    fn decode(payload: &str) -> Option<Revoked> {
        let (user, sid) = payload.split_once(' ')?;
        Some(Revoked {
            user: UserId(user.parse().ok()?),
            sid: sid.parse().ok()?,
        })
    }
}

#[derive(Clone)]
pub struct Revocations {
    redis: Redis,
}

impl Revocations {
    pub fn new(redis: Redis) -> Self {
        Revocations { redis }
    }

    /// Revoke `sid` of `user` for `ttl` (the longest an access token lives) and tell every
    /// gateway. One pipelined round trip; the key is set before the announcement, so a socket
    /// opened while the message travels is refused at its upgrade.
    pub async fn revoke(&self, revoked: Revoked, ttl: Duration) -> Result<(), RedisError> {
        self.revoke_all(&[revoked], ttl).await
    }

    /// [`Revocations::revoke`] for several sessions in one round trip.
    pub async fn revoke_all(&self, revoked: &[Revoked], ttl: Duration) -> Result<(), RedisError> {
        if revoked.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for r in revoked {
            p.set_ex(revoked_key(r.sid), 1, ttl.as_secs().max(1))
                .ignore();
        }
        for r in revoked {
            p.publish(REVOKED_CHANNEL, r.encode()).ignore();
        }
        let mut c = self.redis.conn();
        p.query_async::<()>(&mut c).await
    }

    /// Whether `sid` was revoked (and its tokens may still be unexpired). A restarted Redis
    /// fails the first command on the old connection (the connection manager reconnects after
    /// it): retried briefly, so a restart costs callers a few milliseconds, not a 503. A Redis
    /// that stays down is an error: nothing is accepted unchecked.
    pub async fn is_revoked(&self, sid: Uuid) -> Result<bool, RedisError> {
        let mut delays = chat_common::retry::backoff(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_millis(400),
            Some(3),
        );
        loop {
            let mut c = self.redis.conn();
            match c.exists(revoked_key(sid)).await {
                Ok(revoked) => return Ok(revoked),
                Err(e) => match delays.next() {
                    Some(delay) => {
                        tracing::debug!(error = %e, ?delay, "revocation check failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(e),
                },
            }
        }
    }

    /// Which of `sids` are revoked (same order): one pipelined round trip.
    pub async fn revoked_among(&self, sids: &[Uuid]) -> Result<Vec<bool>, RedisError> {
        if sids.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for sid in sids {
            p.exists(revoked_key(*sid));
        }
        let mut c = self.redis.conn();
        p.query_async(&mut c).await
    }
}

/// A subscription to [`REVOKED_CHANNEL`] on its own connection (a subscribed connection can do
/// nothing else). It ends when the connection does; the caller subscribes again and then
/// checks its sockets with [`Revocations::revoked_among`].
pub struct RevocationFeed {
    stream: redis::aio::PubSubStream,
}

impl RevocationFeed {
    /// Connect and subscribe, within `timeout`.
    pub async fn subscribe(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let stream = crate::redis_conn::subscribe(url, REVOKED_CHANNEL, timeout).await?;
        Ok(RevocationFeed { stream })
    }

    /// The next revocation; `None` once the connection ended. Messages that are not
    /// revocations are skipped.
    pub async fn next(&mut self) -> Option<Revoked> {
        loop {
            let msg = self.stream.next().await?;
            let payload: String = match msg.get_payload() {
                Ok(p) => p,
                Err(_) => continue,
            };
            match Revoked::decode(&payload) {
                Some(r) => return Some(r),
                None => tracing::warn!(payload, "ignoring a malformed session revocation"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_messages_round_trip_and_garbage_is_refused() {
        let r = Revoked {
            user: UserId(Uuid::now_v7()),
            sid: Uuid::now_v7(),
        };
        assert_eq!(Revoked::decode(&r.encode()), Some(r));
        for bad in ["", "x", "x y", &format!("{} nope", r.user)] {
            assert_eq!(Revoked::decode(bad), None, "{bad:?}");
        }
    }
}
