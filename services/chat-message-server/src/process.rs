//! Positions, storage and membership for a batch of records.

use chat_store::bus::Consumed;
use chat_store::cql::{MessageStore, Placement, bucket_of};
use chat_store::pg::PgPool;
use chat_store::push::{Fanout, Outgoing};
use chat_types::bus::{BusRecord, MembershipChange};
use chat_types::internal::Event;
use chat_types::{ChannelId, Message, MessageId, UserId};
use lru::LruCache;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Processor {
    db: PgPool,
    store: MessageStore,
    fanout: Fanout,
    /// Last position given out per channel. Valid only while this server owns the channel's
    /// partition without interruption: cleared on every rebalance. Bounded: an evicted head is
    /// read again from the store, which has every position given out (stored before pushed).
    heads: LruCache<ChannelId, i64>,
    /// Members per channel, kept current by the membership records of the same partition.
    /// Bounded like `heads`; an evicted list is loaded again from PostgreSQL.
    members: LruCache<ChannelId, Arc<Vec<UserId>>>,
}

/// What one batch works on: the heads and member lists of its channels, taken out of the
/// caches for the batch (so no eviction can happen in the middle of it) and put back after.
#[derive(Default)]
struct BatchState {
    heads: HashMap<ChannelId, i64>,
    members: HashMap<ChannelId, Arc<Vec<UserId>>>,
}

impl Processor {
    /// `channels_cached`: how many channels' heads and member lists are kept between batches.
    /// Raised to `batch_max` if lower, so one batch never evicts its own channels.
    pub fn new(
        db: PgPool,
        store: MessageStore,
        fanout: Fanout,
        channels_cached: usize,
        batch_max: usize,
    ) -> Self {
        let cap = NonZeroUsize::new(channels_cached.max(batch_max).max(1)).expect("non-zero");
        Processor {
            db,
            store,
            fanout,
            heads: LruCache::new(cap),
            members: LruCache::new(cap),
        }
    }

    pub fn forget_channels(&mut self) {
        self.heads.clear();
        self.members.clear();
    }

    pub fn ready_check(&self) -> chat_common::ops::ReadyCheck {
        let deps = (self.db.clone(), self.store.clone());
        chat_common::ops::ready_check(deps, |(db, store)| async move {
            chat_store::pg::ping(&db).await?;
            store.ping().await
        })
    }

    /// Handle a batch. Returns `false` if shutdown interrupted it before it was stored (then
    /// nothing of it may be committed).
    pub async fn handle(&mut self, batch: &[Consumed], shutdown: &CancellationToken) -> bool {
        let Some((stored, mut state)) = self.load(batch, shutdown).await else {
            return false;
        };
        let (fresh, outgoing) = assign(batch, &stored, &mut state);
        let done = self.store_and_push(&fresh, &outgoing, shutdown).await;
        if done {
            crate::activity::record(&self.db, &fresh).await;
        }
        for (c, h) in state.heads {
            self.heads.put(c, h);
        }
        for (c, m) in state.members {
            self.members.put(c, m);
        }
        done
    }

    /// Steps 1-3, concurrently (independent reads, each retried on its own): which messages
    /// are already stored (replays, resends), the heads of channels not cached, and the members
    /// of channels not cached (one query for all of them).
    async fn load(
        &mut self,
        batch: &[Consumed],
        shutdown: &CancellationToken,
    ) -> Option<(HashMap<MessageId, Placement>, BatchState)> {
        let ids: Vec<MessageId> = batch
            .iter()
            .filter_map(|r| match &r.record {
                BusRecord::Message(m) => Some(m.id),
                _ => None,
            })
            .collect();
        let channels: HashSet<ChannelId> = batch.iter().map(|r| r.record.channel_id()).collect();
        let mut state = BatchState::default();
        let mut need_head = Vec::new();
        let mut need_members = Vec::new();
        for c in channels {
            match self.heads.pop(&c) {
                Some(h) => {
                    state.heads.insert(c, h);
                }
                None => need_head.push(c),
            }
            match self.members.pop(&c) {
                Some(m) => {
                    state.members.insert(c, m);
                }
                None => need_members.push(c),
            }
        }
        let (store, db) = (&self.store, &self.db);
        let (stored, heads, pairs) = tokio::join!(
            persist(shutdown, "look up message ids", || store.placements(&ids)),
            async {
                if need_head.is_empty() {
                    return Some(Vec::new());
                }
                persist(shutdown, "read channel heads", || async {
                    futures::future::try_join_all(need_head.iter().map(|c| async move {
                        Ok::<_, chat_store::cql::CqlError>((*c, store.head(*c).await?))
                    }))
                    .await
                })
                .await
            },
            async {
                if need_members.is_empty() {
                    return Some(Vec::new());
                }
                persist(shutdown, "load members", || {
                    chat_store::pg::member_ids_of(db, &need_members)
                })
                .await
            },
        );
        let (stored, heads, pairs) = (stored?, heads?, pairs?);
        state.heads.extend(heads);
        for c in need_members {
            state.members.insert(c, Arc::default());
        }
        let mut loaded: HashMap<ChannelId, Vec<UserId>> = HashMap::new();
        for (c, u) in pairs {
            loaded.entry(c).or_default().push(u);
        }
        state
            .members
            .extend(loaded.into_iter().map(|(c, v)| (c, Arc::new(v))));
        Some((stored.into_iter().collect(), state))
    }

    /// Steps 5 and 6: store before anything is pushed or committed; then push, and meanwhile
    /// move the head hints of channels that entered a new bucket (both before the commit; not
    /// beside the insert: a hint must be a stored position). A failed push is retried in the
    /// background by [`Fanout`]; the messages are stored, and a gateway also fills any gap
    /// from history when the next message of the channel arrives.
    async fn store_and_push(
        &self,
        fresh: &[(Message, i64)],
        outgoing: &[Outgoing],
        shutdown: &CancellationToken,
    ) -> bool {
        let store = &self.store;
        if !fresh.is_empty() {
            if persist(shutdown, "store messages", || store.insert(fresh))
                .await
                .is_none()
            {
                return false;
            }
            metrics::counter!("chat_messages_stored_total").increment(fresh.len() as u64);
        }
        let hints = new_bucket_hints(fresh);
        let (hints_written, logged, ()) = tokio::join!(
            async {
                hints.is_empty()
                    || persist(shutdown, "store head hints", || {
                        store.set_head_hints(&hints)
                    })
                    .await
                    .is_some()
            },
            self.log_for_unread_counts(outgoing, shutdown),
            self.fanout.push(outgoing),
        );
        hints_written && logged
    }

    /// Every pushed message (new ones and stored ones pushed again after a crash) into the log
    /// that unread counts are counted from, before the batch is committed: a count must never
    /// miss a message. Idempotent; retried like a store (PostgreSQL down delays the commit,
    /// never a delivery: it runs beside the push).
    async fn log_for_unread_counts(
        &self,
        outgoing: &[Outgoing],
        shutdown: &CancellationToken,
    ) -> bool {
        let messages = || {
            outgoing.iter().filter_map(|o| match &o.event {
                Event::Message { message } => Some(message),
                _ => None,
            })
        };
        if messages().next().is_none() {
            return true;
        }
        let db = &self.db;
        persist(shutdown, "log messages for unread counts", || {
            chat_store::read_state::log_messages(db, messages())
        })
        .await
        .is_some()
    }
}

/// Step 4: positions, in partition order; membership changes applied where they happened.
/// Returns the messages to store (with their Kafka offsets) and the events to push.
fn assign(
    batch: &[Consumed],
    stored: &HashMap<MessageId, Placement>,
    state: &mut BatchState,
) -> (Vec<(Message, i64)>, Vec<Outgoing>) {
    let mut fresh: Vec<(Message, i64)> = Vec::new();
    let mut outgoing: Vec<Outgoing> = Vec::with_capacity(batch.len());
    let mut seen_in_batch: HashSet<MessageId> = HashSet::new();
    let members_of = |state: &BatchState, c: ChannelId| -> Arc<Vec<UserId>> {
        state.members.get(&c).cloned().unwrap_or_default()
    };
    for r in batch {
        match &r.record {
            BusRecord::Message(m) => {
                if let Some(p) = stored.get(&m.id) {
                    if let Some(head) = state.heads.get_mut(&p.channel_id) {
                        *head = (*head).max(p.seq);
                    }
                    if p.kafka_offset != Some(r.offset) {
                        // A client's resend of a message stored from an earlier record: that
                        // record was (or, replayed, will be) pushed. Nothing to do.
                        continue;
                    }
                    // This very record was stored before a crash: it may never have been
                    // pushed. Push the stored version (gateways drop what a connection already
                    // has, by position).
                    let mut message = m.to_message(Some(p.seq));
                    message.channel_id = p.channel_id;
                    outgoing.push(Outgoing {
                        event: Event::Message { message },
                        recipients: members_of(state, p.channel_id),
                    });
                    continue;
                }
                if !seen_in_batch.insert(m.id) {
                    continue; // resent within the same batch
                }
                // Every channel of the batch had its head loaded (or the batch was abandoned).
                let head = state.heads.entry(m.channel_id).or_insert(0);
                *head += 1;
                let message = m.to_message(Some(*head));
                fresh.push((message.clone(), r.offset));
                outgoing.push(Outgoing {
                    event: Event::Message { message },
                    recipients: members_of(state, m.channel_id),
                });
            }
            BusRecord::Membership(ms) => {
                let members = state.members.entry(ms.channel_id).or_default();
                let list = Arc::make_mut(members);
                match ms.change {
                    MembershipChange::Joined => {
                        if !list.contains(&ms.user_id) {
                            list.push(ms.user_id);
                        }
                    }
                    MembershipChange::Left => list.retain(|u| *u != ms.user_id),
                }
                outgoing.push(Outgoing {
                    event: Event::Membership {
                        channel_id: ms.channel_id,
                        user_id: ms.user_id,
                        change: ms.change,
                        seq: state.heads.get(&ms.channel_id).copied().unwrap_or(0),
                    },
                    recipients: Arc::new(vec![ms.user_id]),
                });
            }
        }
    }
    (fresh, outgoing)
}

/// The channels whose new positions entered a new bucket, with their last new position.
fn new_bucket_hints(fresh: &[(Message, i64)]) -> Vec<(ChannelId, i64)> {
    let mut first_new: HashMap<ChannelId, (i64, i64)> = HashMap::new();
    for (m, _) in fresh {
        let seq = m.seq.unwrap_or(0);
        first_new
            .entry(m.channel_id)
            .and_modify(|(_, last)| *last = seq)
            .or_insert((seq, seq));
    }
    first_new
        .into_iter()
        .filter(|(_, (first, last))| bucket_of(*last) != bucket_of(*first - 1))
        .map(|(c, (_, last))| (c, last))
        .collect()
}

/// Run a store operation until it succeeds: a store that is down makes messages late, never
/// lost. Returns `None` only when shutdown interrupts the retries.
async fn persist<T, E, F, Fut>(shutdown: &CancellationToken, what: &str, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delays =
        chat_common::retry::backoff(Duration::from_millis(50), Duration::from_secs(2), None);
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(2));
                metrics::counter!("chat_store_retries_total").increment(1);
                tracing::warn!(error = %e, what, retry_in = ?delay, "store operation failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}
