//! Positions, storage and membership for a batch of records.

use crate::fanout::Fanout;
use chat_store::cql::{MessageStore, bucket_of};
use chat_types::bus::{BusRecord, MembershipChange};
use chat_types::internal::Event;
use chat_types::{ChannelId, Message, MessageId, UserId};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub record: BusRecord,
}

/// An event to push, with the channel whose members receive it (or the one user it concerns).
pub struct Outgoing {
    pub event: Event,
    pub recipients: Arc<Vec<UserId>>,
}

pub struct Processor {
    db: PgPool,
    store: MessageStore,
    fanout: Fanout,
    /// Last position given out per channel. Valid only while this server owns the channel's
    /// partition without interruption: cleared on every rebalance.
    heads: HashMap<ChannelId, i64>,
    /// Members per channel, kept current by the membership records of the same partition.
    members: HashMap<ChannelId, Arc<Vec<UserId>>>,
}

impl Processor {
    pub fn new(db: PgPool, store: MessageStore, fanout: Fanout) -> Self {
        Processor {
            db,
            store,
            fanout,
            heads: HashMap::new(),
            members: HashMap::new(),
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
    pub async fn handle(&mut self, batch: &[Record], shutdown: &CancellationToken) -> bool {
        // 1-3, concurrently (independent reads, each retried on its own): which messages are
        // already stored (replays, resends), the heads of channels not cached, and the members
        // of channels not cached (one query for all of them).
        let ids: Vec<MessageId> = batch
            .iter()
            .filter_map(|r| match &r.record {
                BusRecord::Message(m) => Some(m.id),
                _ => None,
            })
            .collect();
        let channels: HashSet<ChannelId> = batch.iter().map(|r| r.record.channel_id()).collect();
        let need_head: Vec<ChannelId> = channels
            .iter()
            .filter(|c| !self.heads.contains_key(c))
            .copied()
            .collect();
        let need_members: Vec<ChannelId> = channels
            .iter()
            .filter(|c| !self.members.contains_key(c))
            .copied()
            .collect();
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
        let (Some(stored), Some(heads), Some(pairs)) = (stored, heads, pairs) else {
            return false;
        };
        let stored: HashMap<MessageId, chat_store::cql::Placement> = stored.into_iter().collect();
        self.heads.extend(heads);
        if !need_members.is_empty() {
            let mut loaded: HashMap<ChannelId, Vec<UserId>> =
                need_members.iter().map(|c| (*c, Vec::new())).collect();
            for (c, u) in pairs {
                loaded.entry(c).or_default().push(u);
            }
            self.members
                .extend(loaded.into_iter().map(|(c, v)| (c, Arc::new(v))));
        }

        // 4. Positions, in partition order; membership changes applied where they happened.
        let mut fresh: Vec<(Message, i64)> = Vec::new();
        let mut outgoing: Vec<Outgoing> = Vec::with_capacity(batch.len());
        let mut seen_in_batch: HashSet<MessageId> = HashSet::new();
        for r in batch {
            match &r.record {
                BusRecord::Message(m) => {
                    if let Some(p) = stored.get(&m.id) {
                        let head = self.heads.entry(p.channel_id).or_insert(0);
                        *head = (*head).max(p.seq);
                        if p.kafka_offset != Some(r.offset) {
                            // A client's resend of a message stored from an earlier record:
                            // that record was (or, replayed, will be) pushed. Nothing to do.
                            continue;
                        }
                        // This very record was stored before a crash: it may never have been
                        // pushed. Push the stored version (gateways drop what a connection
                        // already has, by position).
                        outgoing.push(Outgoing {
                            event: Event::Message {
                                message: Message {
                                    id: m.id,
                                    channel_id: p.channel_id,
                                    sender_id: m.sender_id,
                                    body: m.body.clone(),
                                    client_msg_id: m.client_msg_id.clone(),
                                    created_at: m.created_at,
                                    seq: Some(p.seq),
                                },
                            },
                            recipients: self.members_of(p.channel_id),
                        });
                        continue;
                    }
                    if !seen_in_batch.insert(m.id) {
                        continue; // resent within the same batch
                    }
                    let head = self.heads.entry(m.channel_id).or_insert(0);
                    *head += 1;
                    let message = Message {
                        id: m.id,
                        channel_id: m.channel_id,
                        sender_id: m.sender_id,
                        body: m.body.clone(),
                        client_msg_id: m.client_msg_id.clone(),
                        created_at: m.created_at,
                        seq: Some(*head),
                    };
                    fresh.push((message.clone(), r.offset));
                    outgoing.push(Outgoing {
                        event: Event::Message { message },
                        recipients: self.members_of(m.channel_id),
                    });
                }
                BusRecord::Membership(ms) => {
                    let members = self.members.entry(ms.channel_id).or_default();
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
                            seq: self.heads.get(&ms.channel_id).copied().unwrap_or(0),
                        },
                        recipients: Arc::new(vec![ms.user_id]),
                    });
                }
            }
        }

        // 5. Store before anything is pushed or committed.
        if !fresh.is_empty() {
            let store = &self.store;
            if persist(shutdown, "store messages", || store.insert(&fresh))
                .await
                .is_none()
            {
                return false;
            }
            metrics::counter!("chat_messages_stored_total").increment(fresh.len() as u64);
        }

        // 6. Push, and meanwhile move the head hints of channels that entered a new bucket
        // (both before the commit). Not beside the insert: a hint must be a stored position.
        // Push failures are logged, not retried: the messages are stored, and a gateway fills
        // any gap from history when the next message of the channel arrives.
        let mut first_new: HashMap<ChannelId, (i64, i64)> = HashMap::new();
        for (m, _) in &fresh {
            let seq = m.seq.unwrap_or(0);
            first_new
                .entry(m.channel_id)
                .and_modify(|(_, last)| *last = seq)
                .or_insert((seq, seq));
        }
        let hints: Vec<(ChannelId, i64)> = first_new
            .into_iter()
            .filter(|(_, (first, last))| bucket_of(*last) != bucket_of(*first - 1))
            .map(|(c, (_, last))| (c, last))
            .collect();
        let store = &self.store;
        let (hints_written, ()) = tokio::join!(
            async {
                hints.is_empty()
                    || persist(shutdown, "store head hints", || {
                        store.set_head_hints(&hints)
                    })
                    .await
                    .is_some()
            },
            self.fanout.push(&outgoing),
        );
        hints_written
    }

    fn members_of(&self, channel: ChannelId) -> Arc<Vec<UserId>> {
        self.members.get(&channel).cloned().unwrap_or_default()
    }
}

/// Run a store operation until it succeeds: a store that is down makes messages late, never
/// lost. Returns `None` only when shutdown interrupts the retries.
async fn persist<T, E, F, Fut>(shutdown: &CancellationToken, what: &str, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(v) => return Some(v),
            Err(e) => {
                metrics::counter!("chat_store_retries_total").increment(1);
                tracing::warn!(error = %e, what, retry_in = ?delay, "store operation failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return None,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
