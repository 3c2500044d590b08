//! The local registry of live connections, and the heartbeat that keeps their presence entries
//! in Redis alive (and rebuilds them all at once if Redis lost its data).

use crate::Shared;
use axum::extract::ws::Utf8Bytes;
use chat_types::bus::MembershipChange;
use chat_types::{ChannelId, UserId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a connection's writer is asked to do, in order. Kept small (24 bytes): a connection's
/// queue allocates room for 32 items as soon as it exists, so this size is paid by every idle
/// connection; bigger payloads live behind an `Arc`, shared by all recipients.
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A channel message, already serialised as a `message` frame.
    Live(Arc<LiveMessage>),
    /// The user joined or left a channel.
    Membership(Arc<MembershipNote>),
    /// Any other frame (ready, ack, error, pong), serialised.
    Frame(String),
    /// The client's first frame is a `resume`: keep holding live messages, however long its
    /// lookups take, until the `Resume` item that follows.
    ResumePending,
    /// Send everything after these positions, then `resumed`, then go live.
    Resume { channels: Vec<(ChannelId, i64)> },
    /// The client's first frame was not a `resume`: stop holding live messages.
    GoLive,
    /// Pushes may have been missed (Redis lost presence): send everything after the last
    /// position of every channel this connection knows.
    Resync,
}

/// A channel message at position `seq`.
#[derive(Debug)]
pub struct LiveMessage {
    pub channel: ChannelId,
    pub seq: i64,
    pub frame: Utf8Bytes,
}

/// The user joined or left `channel` when its last position was `seq`.
#[derive(Debug)]
pub struct MembershipNote {
    pub channel: ChannelId,
    pub change: MembershipChange,
    pub seq: i64,
}

#[derive(Clone)]
pub struct ConnHandle {
    pub id: u64,
    pub tx: mpsc::Sender<Outbound>,
    /// Cancelled to close the connection; the code says why.
    pub kill: CancellationToken,
    pub kill_code: Arc<std::sync::atomic::AtomicU16>,
}

impl ConnHandle {
    /// Queue an item; a full queue means the client is not reading: close it (it will resume).
    pub fn offer(&self, item: Outbound) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(item) {
            metrics::counter!("chat_slow_consumers_total").increment(1);
            self.kill_code.store(
                chat_types::ws::close::SLOW_CONSUMER,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.kill.cancel();
        }
    }
}

/// A connected user: their connections here, and the channels they were recently confirmed to
/// be a member of (so a send does not cost a PostgreSQL query each time).
#[derive(Default)]
struct Local {
    conns: Vec<ConnHandle>,
    /// The user's membership epoch (Redis) the entries of `member_of` were confirmed under. Every
    /// send checks it in the same Redis call that takes the send claim; the API moves it after a
    /// leave, before answering, so a cached membership never outlives a leave.
    epoch: Option<String>,
    /// Channel -> when PostgreSQL confirmed the membership. The age limit is a second line of
    /// defence (Redis losing the epoch), not the mechanism.
    member_of: HashMap<ChannelId, Instant>,
}

#[derive(Default)]
pub struct Hub {
    users: RwLock<HashMap<UserId, Local>>,
}

impl Hub {
    /// Add a connection; returns `true` if it is the user's first on this gateway.
    pub fn add(&self, user: UserId, conn: ConnHandle) -> bool {
        let mut users = self.users.write().expect("hub lock");
        let local = users.entry(user).or_default();
        local.conns.push(conn);
        metrics::gauge!("chat_connections").increment(1.0);
        local.conns.len() == 1
    }

    /// The epoch under which `user` was confirmed a member of `channel` less than `max_age` ago.
    pub fn member_epoch(
        &self,
        user: UserId,
        channel: ChannelId,
        max_age: Duration,
    ) -> Option<String> {
        let users = self.users.read().expect("hub lock");
        let local = users.get(&user)?;
        let fresh = local
            .member_of
            .get(&channel)
            .is_some_and(|at| at.elapsed() < max_age);
        if fresh { local.epoch.clone() } else { None }
    }

    /// Remember that PostgreSQL confirmed the membership, having read `epoch` before asking. A
    /// different epoch forgets every other channel: they were confirmed under an older one.
    pub fn remember_member(&self, user: UserId, channel: ChannelId, epoch: String) {
        let mut users = self.users.write().expect("hub lock");
        let Some(local) = users.get_mut(&user) else {
            return;
        };
        if local.epoch.as_deref() != Some(epoch.as_str()) {
            local.member_of.clear();
            local.epoch = Some(epoch);
        }
        local.member_of.insert(channel, Instant::now());
    }

    /// A `Left` push, or a stale epoch: forget the cached membership(s).
    pub fn forget_member(&self, user: UserId, channel: Option<ChannelId>) {
        let mut users = self.users.write().expect("hub lock");
        if let Some(local) = users.get_mut(&user) {
            match channel {
                Some(c) => {
                    local.member_of.remove(&c);
                }
                None => local.member_of.clear(),
            }
        }
    }

    /// Redis lost its data (epochs included): trust no cached membership.
    pub fn forget_all_memberships(&self) {
        let mut users = self.users.write().expect("hub lock");
        for local in users.values_mut() {
            local.member_of.clear();
            local.epoch = None;
        }
    }

    /// Remove a connection; returns `true` if it was the user's last on this gateway.
    pub fn remove(&self, user: UserId, conn_id: u64) -> bool {
        let mut users = self.users.write().expect("hub lock");
        let Some(local) = users.get_mut(&user) else {
            return false;
        };
        let before = local.conns.len();
        local.conns.retain(|c| c.id != conn_id);
        if local.conns.len() < before {
            metrics::gauge!("chat_connections").decrement(1.0);
        }
        if local.conns.is_empty() {
            users.remove(&user);
            true
        } else {
            false
        }
    }

    /// Run `f` on every connection of each of `users`, under one read lock.
    pub fn for_each_of(&self, users: &[UserId], mut f: impl FnMut(&ConnHandle)) {
        let map = self.users.read().expect("hub lock");
        for u in users {
            if let Some(local) = map.get(u) {
                local.conns.iter().for_each(&mut f);
            }
        }
    }

    /// Queue `item` to every connection.
    pub fn offer_all(&self, item: Outbound) {
        let users = self.users.read().expect("hub lock");
        for c in users.values().flat_map(|l| &l.conns) {
            c.offer(item.clone());
        }
    }

    pub fn users(&self) -> Vec<UserId> {
        self.users
            .read()
            .expect("hub lock")
            .keys()
            .copied()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.users
            .read()
            .expect("hub lock")
            .values()
            .map(|l| l.conns.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Renew every local user's presence every 10 s; check every second that Redis still has our
/// marker, and re-register everyone at once when it does not (Redis restarted empty).
pub async fn heartbeat(shared: Arc<Shared>) {
    let url = shared.cfg.internal_url.clone();
    let id = shared.cfg.id.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        n += 1;
        let lost = match shared.presence.marker_present(&id).await {
            Ok(present) => !present,
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable; presence will be renewed when it is back");
                continue;
            }
        };
        if lost || n.is_multiple_of(10) {
            let users = shared.hub.users();
            match shared.presence.register(&url, &users).await {
                Ok(()) => {
                    if lost {
                        shared.hub.forget_all_memberships();
                        tracing::info!(
                            users = users.len(),
                            "presence registered (redis had no marker)"
                        );
                    }
                    let _ = shared.presence.set_marker(&id).await;
                }
                Err(e) => tracing::warn!(error = %e, "presence renewal failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_queued_item_stays_small() {
        // Every connection's queue holds a block of 32 items from the start.
        assert!(std::mem::size_of::<super::Outbound>() <= 32);
    }
}
