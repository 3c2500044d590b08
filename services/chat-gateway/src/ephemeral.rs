//! Ephemeral signals: typing indicators and presence changes. Nothing here is stored or goes
//! through Kafka: a signal is pushed once, to the gateways of its recipients (found in Redis
//! presence), one request per gateway, concurrently ([`chat_store::push`], the same code the
//! message servers push messages with), and is simply lost if a gateway does not answer.
//!
//! - **Typing**: at most one `typing` per (user, channel) is forwarded per
//!   [`limits::TYPING_INTERVAL_MS`] on this gateway; the others are dropped silently (a client
//!   that keeps typing sends again, and the receiver's indicator lasts
//!   [`limits::TYPING_EXPIRES_MS`], longer than the interval). The sender must be a member; the
//!   recipients are the channel's other members. Members are read from PostgreSQL at most once
//!   per [`MEMBERS_FRESH`] per channel (a bounded cache), so a leave stops a typing indicator
//!   within that time.
//! - **Presence**: when a user comes online (first connection anywhere) or goes offline (last
//!   one closed, or a crashed gateway's entry found lapsed), the peers of their direct
//!   conversations are sent a `presence` frame.

use crate::admission::Refused;
use chat_store::pg::{Access, PgPool};
use chat_store::presence::Presence;
use chat_store::push::{Fanout, Outgoing};
use chat_types::internal::Event;
use chat_types::ws::error_code;
use chat_types::{ChannelId, UserId, limits};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a channel's member list read for typing is reused.
pub const MEMBERS_FRESH: Duration = Duration::from_secs(1);
/// Channels whose member lists are kept (per gateway).
const MEMBER_LISTS_CACHED: usize = 10_000;

/// A channel's members, and when they were read.
type MemberList = (Instant, Arc<Vec<UserId>>);

pub struct Ephemeral {
    db: PgPool,
    presence: Presence,
    fanout: Fanout,
    typing: DefaultKeyedRateLimiter<(UserId, ChannelId)>,
    members: Mutex<LruCache<ChannelId, MemberList>>,
    announcements: Mutex<Announcements>,
}

/// Presence changes waiting to be announced, and whether a task is announcing them.
#[derive(Default)]
struct Announcements {
    pending: Vec<(UserId, Option<i64>)>,
    active: bool,
}

/// Most presence changes announced with one PostgreSQL query.
const ANNOUNCE_AT_ONCE: usize = 1000;

impl Ephemeral {
    pub fn new(db: PgPool, presence: Presence, fanout: Fanout) -> Self {
        let every = Duration::from_millis(limits::TYPING_INTERVAL_MS);
        Ephemeral {
            db,
            presence,
            fanout,
            typing: RateLimiter::keyed(Quota::with_period(every).expect("a non-zero interval")),
            members: Mutex::new(LruCache::new(
                NonZeroUsize::new(MEMBER_LISTS_CACHED).expect("non-zero"),
            )),
            announcements: Mutex::default(),
        }
    }

    /// `user` is typing in `channel`: check membership, then (at most once per
    /// [`limits::TYPING_INTERVAL_MS`] per user and channel; the others are dropped silently)
    /// push to the other members' gateways. Membership comes first so that a refused `typing`
    /// does not use up the allowance: a user who joins may type at once.
    pub async fn typing(&self, user: UserId, channel: ChannelId) -> Result<(), Refused> {
        let members = self.members_of(channel).await?;
        if !members.contains(&user) {
            metrics::counter!("chat_typing_total", "result" => "refused").increment(1);
            // Let the sender try again at once once they have joined.
            self.forget_channel(channel);
            return Err(self.why_not(user, channel).await);
        }
        if self.typing.check_key(&(user, channel)).is_err() {
            metrics::counter!("chat_typing_total", "result" => "coalesced").increment(1);
            return Ok(());
        }
        let recipients: Vec<UserId> = members.iter().copied().filter(|m| *m != user).collect();
        metrics::counter!("chat_typing_total", "result" => "forwarded").increment(1);
        self.fanout
            .push_ephemeral(&[Outgoing {
                event: Event::Typing {
                    channel_id: channel,
                    user_id: user,
                    expires_in_ms: limits::TYPING_EXPIRES_MS,
                },
                recipients: Arc::new(recipients),
            }])
            .await;
        Ok(())
    }

    /// Tell the DM peers of the users of `changes` that they are online, or offline since when,
    /// as Redis has it now (one round trip): changes that passed each other on their way here
    /// still leave every peer with the user's state as it is, and a user who changed twice is
    /// announced once. One PostgreSQL query and one push per gateway for all.
    pub async fn announce(&self, changes: &[(UserId, Option<i64>)]) {
        if changes.is_empty() {
            return;
        }
        // Each user once, with their last change (what is said if Redis cannot be read).
        let mut last: HashMap<UserId, Option<i64>> = HashMap::new();
        let users: Vec<UserId> = changes
            .iter()
            .filter_map(|(u, at)| last.insert(*u, *at).is_none().then_some(*u))
            .collect();
        let states: Vec<Option<i64>> = match self.presence.states(&users).await {
            Ok(states) => users
                .iter()
                .zip(states)
                .map(|(u, p)| {
                    (!p.online).then(|| {
                        p.last_seen_ms
                            .or(last[u])
                            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
                    })
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "presence unreadable; announcing the changes as made");
                users.iter().map(|u| last[u]).collect()
            }
        };
        let pairs = match chat_store::pg::dm_peers_of(&self.db, &users).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not read DM peers; presence change not announced");
                return;
            }
        };
        let mut peers: HashMap<UserId, Vec<UserId>> = HashMap::new();
        for (user, peer) in pairs {
            peers.entry(user).or_default().push(peer);
        }
        let outgoing: Vec<Outgoing> = users
            .iter()
            .zip(states)
            .filter_map(|(user, offline_at)| {
                Some(Outgoing {
                    event: presence_event(*user, offline_at),
                    recipients: Arc::new(peers.remove(user)?),
                })
            })
            .collect();
        metrics::counter!("chat_presence_announcements_total").increment(outgoing.len() as u64);
        self.fanout.push_ephemeral(&outgoing).await;
    }

    fn announcements(&self) -> std::sync::MutexGuard<'_, Announcements> {
        // Nothing panics while holding it.
        self.announcements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop cached member lists older than [`MEMBERS_FRESH`] (the heartbeat calls this).
    pub fn expire_member_lists(&self) {
        let mut cache = self.members.lock().expect("members lock");
        let stale: Vec<ChannelId> = cache
            .iter()
            .filter(|(_, (at, _))| at.elapsed() >= MEMBERS_FRESH)
            .map(|(c, _)| *c)
            .collect();
        for c in stale {
            cache.pop(&c);
        }
        drop(cache);
        self.typing.retain_recent();
        self.typing.shrink_to_fit();
    }

    fn forget_channel(&self, channel: ChannelId) {
        self.members.lock().expect("members lock").pop(&channel);
    }

    async fn members_of(&self, channel: ChannelId) -> Result<Arc<Vec<UserId>>, Refused> {
        if let Some((at, list)) = self.members.lock().expect("members lock").get(&channel)
            && at.elapsed() < MEMBERS_FRESH
        {
            return Ok(list.clone());
        }
        let list = match chat_store::pg::member_ids(&self.db, channel).await {
            Ok(l) => Arc::new(l),
            Err(e) => {
                tracing::warn!(error = %e, "reading members for typing failed");
                return Err(Refused::unavailable());
            }
        };
        self.members
            .lock()
            .expect("members lock")
            .put(channel, (Instant::now(), list.clone()));
        Ok(list)
    }

    /// The refusal for a user not among the members: not a member, or no such channel.
    async fn why_not(&self, user: UserId, channel: ChannelId) -> Refused {
        let (code, message) = match chat_store::pg::access(&self.db, channel, user).await {
            Ok(Access::NoSuchChannel) => (
                error_code::UNKNOWN_CHANNEL,
                "there is no channel with this id",
            ),
            Ok(_) => (
                error_code::NOT_A_MEMBER,
                "you are not a member of this channel",
            ),
            Err(e) => {
                tracing::warn!(error = %e, "membership check for typing failed");
                return Refused::unavailable();
            }
        };
        Refused {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The event of a presence change: online (`None`), or offline since a time (unix ms).
fn presence_event(user: UserId, offline_at: Option<i64>) -> Event {
    Event::Presence {
        user_id: user,
        online: offline_at.is_none(),
        last_seen_at: offline_at.and_then(chrono::DateTime::from_timestamp_millis),
    }
}

/// Announce presence changes in the background (never holding up a connection or the
/// heartbeat): one task at a time announces everything queued so far, each user as Redis has
/// them then ([`Ephemeral::announce`]), so the last word a peer gets is the user's state after
/// their last change (a task per change let an "online" overtake the "offline" after it), and
/// a storm of connections costs a query per batch, not one per connection. The task ends when
/// the queue is empty (a gateway's shutdown drain waits for it).
pub fn announce_later(shared: &Arc<crate::Shared>, changes: Vec<(UserId, Option<i64>)>) {
    if changes.is_empty() {
        return;
    }
    let start = {
        let mut q = shared.ephemeral.announcements();
        q.pending.extend(changes);
        !std::mem::replace(&mut q.active, true)
    };
    if start {
        let shared = shared.clone();
        shared.tasks.clone().spawn(async move {
            loop {
                let batch: Vec<(UserId, Option<i64>)> = {
                    let mut q = shared.ephemeral.announcements();
                    if q.pending.is_empty() {
                        q.active = false;
                        return;
                    }
                    let n = q.pending.len().min(ANNOUNCE_AT_ONCE);
                    q.pending.drain(..n).collect()
                };
                shared.ephemeral.announce(&batch).await;
            }
        });
    }
}

/// Sweep the presence entries of gateways that died (any gateway may; each entry is handled
/// once) and announce their users offline. Called by the heartbeat every second.
pub async fn sweep(shared: &Arc<crate::Shared>) {
    match shared.presence.sweep_lapsed(1000).await {
        Ok(offline) => {
            if !offline.is_empty() {
                tracing::info!(
                    users = offline.len(),
                    "presence entries lapsed (a gateway stopped renewing them): users offline"
                );
            }
            announce_later(
                shared,
                offline.into_iter().map(|(u, at)| (u, Some(at))).collect(),
            );
        }
        Err(e) => tracing::debug!(error = %e, "presence sweep failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offline_change_carries_its_last_seen_time_and_an_online_one_none() {
        let u = UserId(uuid::Uuid::from_u128(1));
        assert_eq!(
            presence_event(u, None),
            Event::Presence {
                user_id: u,
                online: true,
                last_seen_at: None
            }
        );
        let Event::Presence {
            online,
            last_seen_at,
            ..
        } = presence_event(u, Some(1_736_935_661_250))
        else {
            panic!("a presence event");
        };
        assert!(!online);
        assert_eq!(
            last_seen_at.map(|t| t.timestamp_millis()),
            Some(1_736_935_661_250)
        );
    }

    #[test]
    fn one_typing_per_user_and_channel_passes_per_interval() {
        let limiter: DefaultKeyedRateLimiter<(UserId, ChannelId)> = RateLimiter::keyed(
            Quota::with_period(Duration::from_millis(limits::TYPING_INTERVAL_MS)).unwrap(),
        );
        let (u, c, other) = (
            UserId(uuid::Uuid::from_u128(1)),
            ChannelId(uuid::Uuid::from_u128(2)),
            ChannelId(uuid::Uuid::from_u128(3)),
        );
        assert!(limiter.check_key(&(u, c)).is_ok());
        assert!(
            limiter.check_key(&(u, c)).is_err(),
            "the second is coalesced"
        );
        assert!(
            limiter.check_key(&(u, other)).is_ok(),
            "another channel is not"
        );
    }
}
