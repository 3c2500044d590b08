//! Redis: the registry of which gateway each connected user is on.
//!
//! `presence:{user_id}` is a sorted set of gateway delivery URLs scored by the time (unix ms)
//! the entry stops being true. Gateways renew their entries on a heartbeat; a crashed gateway's
//! entries lapse by themselves, so nobody is reported on a dead gateway for longer than the TTL.
//! Redis keeps nothing on disk here: after a restart every gateway notices its marker key is gone
//! and registers all of its users again at once.
//!
//! Online / offline (issue #15) is derived from the same entries: a user is online while any
//! entry of theirs is current. Beside them:
//! - `last-seen:{user_id}`: unix ms when they were last connected, written when a connection
//!   of theirs closes (its gateway's last one for the user) or when their entry of a crashed
//!   gateway is found lapsed (then: its last renewal); only ever moved forward, kept
//!   [`LAST_SEEN_TTL`].
//! - `presence-expiries`: every entry once more, `{user_id}|{gateway url}` scored by the time it
//!   lapses, so that the entries of a gateway that died without unregistering are found (by any
//!   gateway, [`Presence::sweep_lapsed`]) and their users announced offline: no ghosts.
//!
//! Gateways: `gateways` lists every gateway that has current entries, its delivery URL scored
//! by the latest expiry of any entry it wrote (written in the same pipeline as the entry, never
//! moved back), so a gateway stays listed at least as long as any of its users' entries is
//! current. Message servers push a big channel's events to every listed gateway and let each
//! pick its own connections ([`crate::push`]) instead of looking every member up here.
//!
//! Attention (issue #16): `attentive:{user_id}` is a sorted set like `presence:`, of the gateways
//! where the user has a connection whose app is in the foreground (a connection starts there; an
//! `app_state` frame moves it). Renewed by the same heartbeat, lapsing the same way, so a crashed
//! gateway leaves no user "looking". Push notifications skip attentive users.

use crate::redis_conn::{Redis, RedisError};
use chat_types::UserId;
use redis::AsyncCommands;
use std::time::Duration;

/// How long a presence entry stays true without renewal.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);
/// How long a user's last-seen time is kept after they were last connected.
pub const LAST_SEEN_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// The index of every entry by the time it lapses.
const EXPIRIES_KEY: &str = "presence-expiries";
/// Every gateway with current entries, by the latest time one of them lapses.
const GATEWAYS_KEY: &str = "gateways";
/// Users renewed per round trip by [`Presence::register`]: seven commands each. A gateway's
/// whole renewal in one pipeline (2,500 users: 17,500 commands, ~20 ms of Redis) held up
/// everything queued behind it on the shared connection (send claims) and every other client
/// of Redis (the message servers' lookups): a delivery p99 spike every 10 s (docs/benchmarks.md,
/// tuning log 20). A chunk costs Redis ~1 ms, and what waits for it waits at most that long.
pub const REGISTER_CHUNK: usize = 128;

/// Sets `KEYS[1]` to `ARGV[1]` (unix ms) unless it holds a later time; expiry `ARGV[2]` ms.
const MOVE_FORWARD: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0";

/// Whether a user is connected anywhere, and when they were last seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserPresence {
    pub online: bool,
    /// Unix ms; `None` if never recorded (or forgotten after [`LAST_SEEN_TTL`]).
    pub last_seen_ms: Option<i64>,
}

#[derive(Clone)]
pub struct Presence {
    redis: Redis,
}

fn presence_key(u: UserId) -> String {
    format!("presence:{u}")
}

fn attentive_key(u: UserId) -> String {
    format!("attentive:{u}")
}

fn last_seen_key(u: UserId) -> String {
    format!("last-seen:{u}")
}

fn expiry_member(u: UserId, gateway_url: &str) -> String {
    format!("{u}|{gateway_url}")
}

fn move_last_seen_forward(p: &mut redis::Pipeline, u: UserId, at_ms: i64) {
    p.cmd("EVAL")
        .arg(MOVE_FORWARD)
        .arg(1)
        .arg(last_seen_key(u))
        .arg(at_ms)
        .arg(LAST_SEEN_TTL.as_millis() as i64)
        .ignore();
}

/// Add (renew) or remove `user`'s attention entry for this gateway, dropping lapsed entries of
/// other gateways while at it.
fn attention(p: &mut redis::Pipeline, u: UserId, gateway_url: &str, attentive: bool, now: i64) {
    let k = attentive_key(u);
    if attentive {
        let until = now + PRESENCE_TTL.as_millis() as i64;
        p.zadd(&k, gateway_url, until).ignore();
        p.zrembyscore(&k, "-inf", now).ignore();
        p.pexpire(&k, 2 * PRESENCE_TTL.as_millis() as i64).ignore();
    } else {
        p.zrem(&k, gateway_url).ignore();
    }
}

/// Keep `gateway_url` listed until at least `until` (`GT`: a later expiry already written stays).
fn list_gateway(p: &mut redis::Pipeline, gateway_url: &str, until: i64) {
    p.cmd("ZADD")
        .arg(GATEWAYS_KEY)
        .arg("GT")
        .arg(until)
        .arg(gateway_url)
        .ignore();
}

/// Where a batch's events go: every listed gateway, and the gateways of the users looked up
/// one by one.
#[derive(Debug, Default)]
pub struct Routes {
    /// Every gateway with current entries.
    pub gateways: Vec<String>,
    /// The gateways each looked-up user is connected to now (same order as the users asked).
    pub of_users: Vec<Vec<String>>,
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

    /// Record (or renew) that `users` are connected to the gateway reachable at `gateway_url`,
    /// each with whether a connection of theirs here is in the foreground (attentive; the entry
    /// is renewed, or removed when not). One pipelined round trip per [`REGISTER_CHUNK`] users.
    /// Returns the users whose entry here was not in the index of expiries any more: they were
    /// announced offline meanwhile (their renewal came too late, or Redis lost its data), and
    /// are online again.
    pub async fn register(
        &self,
        gateway_url: &str,
        users: &[(UserId, bool)],
    ) -> Result<Vec<UserId>, RedisError> {
        let mut revived = Vec::new();
        for chunk in users.chunks(REGISTER_CHUNK) {
            revived.extend(self.register_chunk(gateway_url, chunk).await?);
        }
        Ok(revived)
    }

    async fn register_chunk(
        &self,
        gateway_url: &str,
        users: &[(UserId, bool)],
    ) -> Result<Vec<UserId>, RedisError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let until = now + PRESENCE_TTL.as_millis() as i64;
        let mut p = redis::pipe();
        for (u, attentive) in users {
            let k = presence_key(*u);
            p.zadd(&k, gateway_url, until).ignore();
            // Drop lapsed entries of other (dead) gateways while we are here.
            p.zrembyscore(&k, "-inf", now).ignore();
            p.pexpire(&k, 2 * PRESENCE_TTL.as_millis() as i64).ignore();
            attention(&mut p, *u, gateway_url, *attentive, now);
            // Answers 1 when the member is new.
            p.zadd(EXPIRIES_KEY, expiry_member(*u, gateway_url), until);
        }
        list_gateway(&mut p, gateway_url, until);
        // Gateways that died without withdrawing: nobody pushes to them once lapsed.
        p.zrembyscore(GATEWAYS_KEY, "-inf", now).ignore();
        let mut c = self.redis.conn();
        let added: Vec<i64> = p.query_async(&mut c).await?;
        Ok(users
            .iter()
            .zip(added)
            .filter(|(_, a)| *a == 1)
            .map(|((u, _), _)| *u)
            .collect())
    }

    /// Whether `user` has a connection in the foreground on this gateway now (an `app_state`
    /// frame changed it): one round trip.
    pub async fn set_attentive(
        &self,
        gateway_url: &str,
        user: UserId,
        attentive: bool,
    ) -> Result<(), RedisError> {
        let mut p = redis::pipe();
        attention(&mut p, user, gateway_url, attentive, now_ms());
        let mut c = self.redis.conn();
        p.query_async::<()>(&mut c).await
    }

    /// Whether each of `users` has a connection in the foreground on any gateway (same order).
    /// One pipelined round trip.
    pub async fn attentive(&self, users: &[UserId]) -> Result<Vec<bool>, RedisError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut p = redis::pipe();
        for u in users {
            p.zcount(attentive_key(*u), now, "+inf");
        }
        let mut c = self.redis.conn();
        let counts: Vec<i64> = p.query_async(&mut c).await?;
        Ok(counts.into_iter().map(|n| n > 0).collect())
    }

    /// `user`'s first connection on this gateway: register it. Returns whether the user just
    /// came online (no other gateway has a current entry of theirs). Atomic (MULTI), so of two
    /// gateways registering one user at once, at most one sees the user come online... and of
    /// two unregistering, exactly one sees them go offline ([`Presence::disconnect`]).
    pub async fn connect(&self, gateway_url: &str, user: UserId) -> Result<bool, RedisError> {
        let now = now_ms();
        let until = now + PRESENCE_TTL.as_millis() as i64;
        let k = presence_key(user);
        let mut p = redis::pipe();
        p.atomic()
            .zrembyscore(&k, "-inf", now)
            .ignore()
            .zadd(&k, gateway_url, until)
            .ignore()
            .pexpire(&k, 2 * PRESENCE_TTL.as_millis() as i64)
            .ignore()
            .zadd(EXPIRIES_KEY, expiry_member(user, gateway_url), until)
            .ignore();
        list_gateway(&mut p, gateway_url, until);
        // A connection starts in the foreground.
        attention(&mut p, user, gateway_url, true, now);
        p.zcard(&k);
        let mut c = self.redis.conn();
        let (entries,): (i64,) = p.query_async(&mut c).await?;
        Ok(entries == 1)
    }

    /// `user`'s last connection on this gateway closed: remove the entry and record the time
    /// as their last seen. Returns that time (unix ms) if the user is now offline everywhere.
    pub async fn disconnect(
        &self,
        gateway_url: &str,
        user: UserId,
    ) -> Result<Option<i64>, RedisError> {
        let now = now_ms();
        let k = presence_key(user);
        let mut p = redis::pipe();
        p.atomic()
            .zrem(&k, gateway_url)
            .ignore()
            .zrem(EXPIRIES_KEY, expiry_member(user, gateway_url))
            .ignore();
        attention(&mut p, user, gateway_url, false, now);
        move_last_seen_forward(&mut p, user, now);
        p.zcount(&k, now, "+inf");
        let mut c = self.redis.conn();
        let (current,): (i64,) = p.query_async(&mut c).await?;
        Ok((current == 0).then_some(now))
    }

    /// Entries that lapsed without being removed (their gateway died, or could not renew them
    /// in time), at most `limit`, each handed to exactly one caller (whoever removes it from the
    /// index first): the users among them who are now offline everywhere, with their last seen
    /// (the entry's last renewal), which is recorded.
    pub async fn sweep_lapsed(&self, limit: usize) -> Result<Vec<(UserId, i64)>, RedisError> {
        let now = now_ms();
        let mut c = self.redis.conn();
        let lapsed: Vec<(String, i64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(EXPIRIES_KEY)
            .arg("-inf")
            .arg(now)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut c)
            .await?;
        if lapsed.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for (member, _) in &lapsed {
            p.zrem(EXPIRIES_KEY, member);
        }
        let won: Vec<i64> = p.query_async(&mut c).await?;
        let mut mine: Vec<(UserId, i64)> = Vec::new();
        for ((member, until), won) in lapsed.into_iter().zip(won) {
            let user = member.split('|').next().and_then(|u| u.parse().ok());
            match user {
                Some(u) if won == 1 => mine.push((u, until - PRESENCE_TTL.as_millis() as i64)),
                // Not ours to handle, or not a member we wrote: removed either way.
                _ => {}
            }
        }
        if mine.is_empty() {
            return Ok(mine);
        }
        let mut p = redis::pipe();
        for (u, _) in &mine {
            p.zcount(presence_key(*u), now, "+inf");
        }
        let current: Vec<i64> = p.query_async(&mut c).await?;
        let offline: Vec<(UserId, i64)> = mine
            .into_iter()
            .zip(current)
            .filter(|(_, n)| *n == 0)
            .map(|(m, _)| m)
            .collect();
        let mut p = redis::pipe();
        for (u, at) in &offline {
            move_last_seen_forward(&mut p, *u, *at);
        }
        p.query_async::<()>(&mut c).await?;
        Ok(offline)
    }

    /// Whether each of `users` is online, and when each was last seen (same order as `users`).
    /// One pipelined round trip.
    pub async fn states(&self, users: &[UserId]) -> Result<Vec<UserPresence>, RedisError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut p = redis::pipe();
        for u in users {
            p.zcount(presence_key(*u), now, "+inf");
            p.get(last_seen_key(*u));
        }
        let mut c = self.redis.conn();
        let answers: Vec<(i64, Option<i64>)> = p.query_async(&mut c).await?;
        Ok(answers
            .into_iter()
            .map(|(current, last_seen_ms)| UserPresence {
                online: current > 0,
                last_seen_ms,
            })
            .collect())
    }

    /// Every listed gateway, and the gateways each of `users` is connected to now: one
    /// pipelined round trip.
    pub async fn routes(&self, users: &[UserId]) -> Result<Routes, RedisError> {
        let now = now_ms();
        let mut p = redis::pipe();
        p.zrangebyscore(GATEWAYS_KEY, now, "+inf");
        for u in users {
            p.zrangebyscore(presence_key(*u), now, "+inf");
        }
        let mut c = self.redis.conn();
        let mut answers: Vec<Vec<String>> = p.query_async(&mut c).await?;
        let of_users = answers.split_off(1);
        Ok(Routes {
            gateways: answers.pop().unwrap_or_default(),
            of_users,
        })
    }

    /// This gateway is going away (its connections are closed): stop listing it, so that
    /// nobody pushes to it until its entry would have lapsed.
    pub async fn withdraw(&self, gateway_url: &str) -> Result<(), RedisError> {
        let mut c = self.redis.conn();
        c.zrem(GATEWAYS_KEY, gateway_url).await
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
