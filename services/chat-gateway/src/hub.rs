//! The local registry of live connections, and the heartbeat that keeps their presence entries
//! in Redis alive (and rebuilds them all at once if Redis lost its data).

use crate::Shared;
use axum::extract::ws::Utf8Bytes;
use chat_types::bus::MembershipChange;
use chat_types::{ChannelId, UserId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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
    /// The session (refresh-token family) the connection was authorised in; `None` for tokens
    /// minted before sessions were in tokens. Revoking the session closes the connection.
    pub sid: Option<Uuid>,
    pub tx: mpsc::Sender<Outbound>,
    pub state: Arc<ConnState>,
}

/// What a connection's handle, reader and writer share.
pub struct ConnState {
    /// Cancelled to close the connection; `kill_code` says why.
    pub kill: CancellationToken,
    pub kill_code: AtomicU16,
    /// Bytes of frames queued and not yet written: the queue is bounded in bytes as well as in
    /// items, so a client that stops reading cannot make the gateway hold megabytes for it.
    pub queued_bytes: AtomicUsize,
    pub max_queued_bytes: usize,
    /// Closed because its session was revoked (4401, like an expired token; the close reason
    /// tells the two apart for people reading logs).
    pub revoked: AtomicBool,
    /// The client said its app went to the background (`app_state`); it starts in the front.
    pub background: AtomicBool,
}

impl ConnState {
    pub fn new(kill: CancellationToken, max_queued_bytes: usize) -> Self {
        ConnState {
            kill,
            kill_code: AtomicU16::new(chat_types::ws::close::GOING_AWAY),
            queued_bytes: AtomicUsize::new(0),
            max_queued_bytes,
            revoked: AtomicBool::new(false),
            background: AtomicBool::new(false),
        }
    }

    /// The connection's session was revoked: close it with 4401.
    pub fn revoke(&self) {
        if !self.kill.is_cancelled() {
            self.revoked.store(true, Ordering::Relaxed);
        }
        self.close(chat_types::ws::close::UNAUTHORIZED);
    }

    /// Close the connection with `code` (the first reason given wins).
    pub fn close(&self, code: u16) {
        if !self.kill.is_cancelled() {
            self.kill_code.store(code, Ordering::Relaxed);
            self.kill.cancel();
        }
    }

    /// The writer took an item off the queue.
    pub fn dequeued(&self, item: &Outbound) {
        self.queued_bytes.fetch_sub(item.size(), Ordering::Relaxed);
    }
}

impl Outbound {
    /// Bytes this item holds for its connection (a shared frame is counted in full: the bound
    /// is per connection).
    pub fn size(&self) -> usize {
        match self {
            Outbound::Live(l) => l.frame.len(),
            Outbound::Frame(f) => f.len(),
            _ => 0,
        }
    }
}

impl ConnHandle {
    pub fn in_foreground(&self) -> bool {
        !self.state.background.load(Ordering::Relaxed)
    }

    /// Queue an item without waiting; a full queue (by count or by bytes) means the client is
    /// not reading: close it (it will resume).
    pub fn offer(&self, item: Outbound) {
        let size = item.size();
        let queued = self.state.queued_bytes.fetch_add(size, Ordering::Relaxed) + size;
        let refused = if queued > self.state.max_queued_bytes {
            Some(size)
        } else {
            match self.tx.try_send(item) {
                Ok(()) => None,
                Err(mpsc::error::TrySendError::Full(_)) => Some(size),
                // The connection is closing; nothing to account for any more.
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        };
        if let Some(size) = refused {
            self.state.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            metrics::counter!("chat_slow_consumers_total").increment(1);
            self.state.close(chat_types::ws::close::SLOW_CONSUMER);
        }
    }

    /// Queue an item, waiting for room (the connection's own replies: acks, pongs, errors;
    /// waiting here stops reading the client's socket, which is the back-pressure wanted).
    pub async fn send(&self, item: Outbound) {
        let size = item.size();
        self.state.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if self.tx.send(item).await.is_err() {
            self.state.queued_bytes.fetch_sub(size, Ordering::Relaxed);
        }
    }
}

/// The users connected here, with their connections.
#[derive(Default)]
pub struct Hub {
    users: RwLock<HashMap<UserId, Vec<ConnHandle>>>,
}

impl Hub {
    /// Add a connection; returns `true` if it is the user's first on this gateway.
    pub fn add(&self, user: UserId, conn: ConnHandle) -> bool {
        let mut users = self.users.write().expect("hub lock");
        let conns = users.entry(user).or_default();
        conns.push(conn);
        metrics::gauge!("chat_connections").increment(1.0);
        conns.len() == 1
    }

    /// Remove a connection; returns `true` if it was the user's last on this gateway.
    pub fn remove(&self, user: UserId, conn_id: u64) -> bool {
        let mut users = self.users.write().expect("hub lock");
        let Some(conns) = users.get_mut(&user) else {
            return false;
        };
        let before = conns.len();
        conns.retain(|c| c.id != conn_id);
        if conns.len() < before {
            metrics::gauge!("chat_connections").decrement(1.0);
        }
        if conns.is_empty() {
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
            if let Some(conns) = map.get(u) {
                conns.iter().for_each(&mut f);
            }
        }
    }

    /// Queue `item` to every connection.
    pub fn offer_all(&self, item: Outbound) {
        let users = self.users.read().expect("hub lock");
        for c in users.values().flatten() {
            c.offer(item.clone());
        }
    }

    /// Close (4401) every connection of `user` authorised in session `sid`; how many.
    pub fn revoke_session(&self, user: UserId, sid: Uuid) -> usize {
        let mut closed = 0;
        self.for_each_of(&[user], |c| {
            if c.sid == Some(sid) {
                c.state.revoke();
                closed += 1;
            }
        });
        closed
    }

    /// Every session with a connection here, with its user (each once).
    pub fn sessions(&self) -> Vec<(UserId, Uuid)> {
        let users = self.users.read().expect("hub lock");
        let mut out: Vec<(UserId, Uuid)> = users
            .iter()
            .flat_map(|(u, conns)| conns.iter().filter_map(|c| c.sid.map(|s| (*u, s))))
            .collect();
        out.sort_unstable_by_key(|(_, s)| *s);
        out.dedup();
        out
    }

    pub fn connections_of(&self, user: &UserId) -> usize {
        self.users
            .read()
            .expect("hub lock")
            .get(user)
            .map_or(0, Vec::len)
    }

    /// Whether `user` has a connection here whose app is in the foreground.
    pub fn is_attentive(&self, user: &UserId) -> bool {
        self.users
            .read()
            .expect("hub lock")
            .get(user)
            .is_some_and(|conns| conns.iter().any(ConnHandle::in_foreground))
    }

    /// Every user with a connection here, with whether one of them is in the foreground.
    pub fn users_attentive(&self) -> Vec<(UserId, bool)> {
        self.users
            .read()
            .expect("hub lock")
            .iter()
            .map(|(u, conns)| (*u, conns.iter().any(ConnHandle::in_foreground)))
            .collect()
    }

    pub fn is_connected(&self, user: &UserId) -> bool {
        self.users.read().expect("hub lock").contains_key(user)
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
            .map(Vec::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Renew every local user's presence every 10 s; check every second that Redis still has our
/// marker, and when it does not (Redis restarted empty), register everyone again at once and
/// resync every connection from history: pushes made while nobody was registered reached
/// nobody, and a channel that then goes quiet would otherwise keep the hole.
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
        crate::ephemeral::sweep(&shared).await;
        shared.ephemeral.expire_member_lists();
        let lost = match shared.presence.marker_present(&id).await {
            Ok(present) => !present,
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable; presence will be renewed when it is back");
                continue;
            }
        };
        if !lost && !n.is_multiple_of(10) {
            continue;
        }
        shared
            .admission
            .retain_users(|u| shared.hub.is_connected(u));
        // The heartbeat also mends attention entries that two connections of one user changing
        // state at once left the wrong way round (their updates are not ordered).
        let users = shared.hub.users_attentive();
        match shared.presence.register(&url, &users).await {
            Ok(revived) => {
                // Users announced offline meanwhile (their renewal came late) are back. After
                // Redis lost its data every user looks revived; peers learn it from GET.
                if !lost {
                    // Only users still here: one who left since `users` was read was just
                    // registered again by mistake (that entry lapses), and is not back.
                    let back = revived
                        .into_iter()
                        .filter(|u| shared.hub.is_connected(u))
                        .map(|u| (u, None))
                        .collect();
                    crate::ephemeral::announce_later(&shared, back);
                }
                if lost {
                    // Registered first: from here on pushes reach us again, and everything
                    // pushed before is stored, so the resync's history reads cover it.
                    shared.admission.forget_all();
                    shared.hub.offer_all(Outbound::Resync);
                    tracing::info!(
                        users = users.len(),
                        "presence registered and connections resynced (redis had no marker)"
                    );
                }
                let _ = shared.presence.set_marker(&id).await;
            }
            Err(e) => tracing::warn!(error = %e, "presence renewal failed"),
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
