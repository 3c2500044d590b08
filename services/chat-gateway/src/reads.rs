//! Read marks (`mark_read`): a client may send one for every message it shows, so the gateway
//! coalesces them. Each accepted mark goes at once to the user's other connections on this
//! gateway; the highest mark per (user, channel) is announced to the other gateways every
//! [`ANNOUNCE_EVERY`] (one Redis `PUBLISH` per interval, [`chat_store::read_feed`]) and stored
//! every [`STORE_EVERY`] (one PostgreSQL statement per interval, [`chat_store::read_state`]),
//! and once more when the gateway shuts down. A gateway killed outright loses at most the last
//! interval's marks: the client marks again as it shows messages.

use crate::Shared;
use crate::hub::Outbound;
use chat_store::read_feed::{ReadMark, ReadMarkBatch, ReadMarkFeed};
use chat_types::ws::ServerFrame;
use chat_types::{ChannelId, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ANNOUNCE_EVERY: Duration = Duration::from_millis(100);
pub const STORE_EVERY: Duration = Duration::from_secs(1);
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);

/// How many (user, channel) pairs' highest marks a gateway remembers to drop repeats and
/// stale marks (out-of-order devices) before passing them on. A forgotten pair only means a
/// stale mark may be passed on once: clients keep the highest anyway.
const KNOWN_CAPACITY: usize = 100_000;

/// The highest mark per (user, channel) known here, not yet announced, and not yet stored.
pub struct PendingMarks(Mutex<Pending>);

struct Pending {
    known: lru::LruCache<(UserId, ChannelId), i64>,
    announce: HashMap<(UserId, ChannelId), i64>,
    store: HashMap<(UserId, ChannelId), i64>,
}

impl Default for PendingMarks {
    fn default() -> Self {
        PendingMarks(Mutex::new(Pending {
            known: lru::LruCache::new(
                std::num::NonZeroUsize::new(KNOWN_CAPACITY).expect("non-zero"),
            ),
            announce: HashMap::new(),
            store: HashMap::new(),
        }))
    }
}

fn raise(map: &mut HashMap<(UserId, ChannelId), i64>, key: (UserId, ChannelId), seq: i64) {
    let e = map.entry(key).or_insert(seq);
    *e = (*e).max(seq);
}

fn drain(map: &mut HashMap<(UserId, ChannelId), i64>) -> Vec<ReadMark> {
    map.drain()
        .map(|((user, channel), seq)| ReadMark { user, channel, seq })
        .collect()
}

impl Pending {
    /// Whether `mark` is above the highest known for its user and channel (then it is).
    fn advance(&mut self, mark: &ReadMark) -> bool {
        let key = (mark.user, mark.channel);
        if self.known.get(&key).is_some_and(|k| *k >= mark.seq) {
            return false;
        }
        self.known.put(key, mark.seq);
        true
    }
}

impl PendingMarks {
    /// Note a mark a local connection sent; `false` if it is not above the highest known here
    /// (a repeat, or a device behind another): nothing to pass on or store.
    pub fn note(&self, mark: ReadMark) -> bool {
        let mut p = self.0.lock().expect("read marks lock");
        if !p.advance(&mark) {
            return false;
        }
        let key = (mark.user, mark.channel);
        raise(&mut p.announce, key, mark.seq);
        raise(&mut p.store, key, mark.seq);
        true
    }

    /// Note a mark another gateway announced (it stores it); `false` if not news here.
    fn observe(&self, mark: &ReadMark) -> bool {
        self.0.lock().expect("read marks lock").advance(mark)
    }

    fn take_announce(&self) -> Vec<ReadMark> {
        drain(&mut self.0.lock().expect("read marks lock").announce)
    }

    fn take_store(&self) -> Vec<ReadMark> {
        drain(&mut self.0.lock().expect("read marks lock").store)
    }

    /// Marks whose store failed: kept for the next interval (merged with any higher one).
    fn restore(&self, marks: Vec<ReadMark>) {
        let mut p = self.0.lock().expect("read marks lock");
        for m in marks {
            raise(&mut p.store, (m.user, m.channel), m.seq);
        }
    }
}

/// The `read` frame for `mark`.
fn frame(mark: &ReadMark) -> Outbound {
    Outbound::Frame(
        serde_json::to_string(&ServerFrame::Read {
            channel_id: mark.channel,
            seq: mark.seq,
        })
        .expect("frames serialise"),
    )
}

/// Accept a member's mark from connection `from`: pass it to the user's other connections
/// here at once, and queue it for the other gateways and PostgreSQL.
pub fn accept(shared: &Shared, mark: ReadMark, from: u64) {
    if !shared.read_marks.note(mark) {
        return;
    }
    metrics::counter!("chat_read_marks_total").increment(1);
    // Built only when the user has another connection here (most marks have none to tell).
    let mut out = None;
    shared.hub.for_each_of(&[mark.user], |c| {
        if c.id != from {
            c.offer(out.get_or_insert_with(|| frame(&mark)).clone());
        }
    });
}

/// Announce and store pending marks on their intervals until shutdown, then store the rest.
pub async fn flush(shared: Arc<Shared>) {
    let mut announce = tokio::time::interval(ANNOUNCE_EVERY);
    let mut store = tokio::time::interval(STORE_EVERY);
    announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    store.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = announce.tick() => {
                let marks = shared.read_marks.take_announce();
                if marks.is_empty() {
                    continue;
                }
                let batch = ReadMarkBatch { origin: shared.cfg.id.clone(), marks };
                if let Err(e) = shared.read_announcer.announce(&batch).await {
                    // Other devices learn the mark when they next list conversations.
                    metrics::counter!("chat_read_mark_announce_errors_total").increment(1);
                    tracing::warn!(error = %e, "could not announce read marks");
                }
            }
            _ = store.tick() => store_pending(&shared).await,
            () = shared.shutdown.cancelled() => {
                store_pending(&shared).await;
                return;
            }
        }
    }
}

async fn store_pending(shared: &Shared) {
    let marks = shared.read_marks.take_store();
    if marks.is_empty() {
        return;
    }
    if let Err(e) = chat_store::read_state::record_marks(&shared.db, &marks).await {
        metrics::counter!("chat_read_mark_store_errors_total").increment(1);
        tracing::warn!(error = %e, marks = marks.len(), "could not store read marks; keeping them for the next interval");
        shared.read_marks.restore(marks);
    }
}

/// Pass other gateways' announced marks to the local connections of their users.
pub async fn follow(shared: Arc<Shared>, redis_url: String) {
    loop {
        let subscribed = tokio::select! {
            r = ReadMarkFeed::subscribe(&redis_url, Duration::from_secs(2)) => r,
            () = shared.shutdown.cancelled() => return,
        };
        match subscribed {
            Ok(mut feed) => loop {
                let next = tokio::select! {
                    b = feed.next() => b,
                    () = shared.shutdown.cancelled() => return,
                };
                let Some(batch) = next else {
                    tracing::warn!("read-mark feed ended; subscribing again");
                    break;
                };
                if batch.origin == shared.cfg.id {
                    continue;
                }
                for mark in batch.marks.iter().filter(|m| shared.read_marks.observe(m)) {
                    let out = frame(mark);
                    shared
                        .hub
                        .for_each_of(&[mark.user], |c| c.offer(out.clone()));
                }
            },
            Err(e) => tracing::warn!(error = %e, "cannot follow read marks; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            () = shared.shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn only_marks_above_the_highest_known_are_passed_on_and_stored() {
        let p = PendingMarks::default();
        let (u, c) = (UserId(Uuid::now_v7()), ChannelId(Uuid::now_v7()));
        let m = |seq| ReadMark {
            user: u,
            channel: c,
            seq,
        };
        assert!(p.note(m(5)));
        assert!(p.note(m(9)));
        assert!(
            !p.note(m(7)),
            "a lower mark (another device, out of order) is not news"
        );
        assert!(!p.note(m(9)), "nor is a repeat");
        assert_eq!(p.take_announce(), vec![m(9)]);
        assert!(!p.note(m(9)), "announced: still known");
        assert_eq!(p.take_store(), vec![m(9)]);
        // Another gateway's marks: news only when higher; never stored here.
        assert!(!p.observe(&m(8)));
        assert!(p.observe(&m(11)));
        assert!(!p.note(m(10)), "below what another device reached");
        assert!(p.take_store().is_empty());
        // A failed store keeps its marks, merged with a higher one that came meanwhile.
        assert!(p.note(m(12)));
        let taken = p.take_store();
        assert!(p.note(m(13)));
        p.restore(taken);
        assert_eq!(p.take_store(), vec![m(13)]);
    }
}
