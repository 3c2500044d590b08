//! Positions, storage and membership for a batch of records.

use crate::activity::Activity;
use crate::apply::{Targets, event_at, placement_key};
use chat_store::bus::Consumed;
use chat_store::cql::{MessageStore, Placement, StateWrite, bucket_of};
use chat_store::pg::PgPool;
use chat_store::push::{Fanout, Outgoing};
use chat_types::bus::{Action, BusRecord, MembershipChange, Target};
use chat_types::events::{Change, ChannelEvent};
use chat_types::internal::Event;
use chat_types::rest::ReplyPreview;
use chat_types::{ChannelId, EventId, Message, MessageId, UserId, limits};
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
    /// The second stage, over the same stores (a clone is handed to the consume loop).
    publisher: Publisher,
    /// Last position given out per channel. Valid only while this server owns the channel's
    /// partition without interruption: cleared on every rebalance. Bounded: an evicted head is
    /// read again from the store, which has every position given out (stored before pushed).
    heads: LruCache<ChannelId, i64>,
    /// Members per channel, kept current by the membership records of the same partition.
    /// Bounded like `heads`; an evicted list is loaded again from PostgreSQL.
    members: LruCache<ChannelId, Arc<Vec<UserId>>>,
    /// Records produced before this (milliseconds since the epoch) may have been stored by an
    /// older message server, which did not log message ids: their ids are also looked up in
    /// Cassandra. `i64::MIN` on a new install.
    unlogged_before_ms: i64,
}

/// How much later than `message_index.logged_since` (PostgreSQL's clock) a record stored by an
/// older message server may say it was produced (its producer's clock).
const CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// What one batch works on: the heads and member lists of its channels, taken out of the
/// caches for the batch (so no eviction can happen in the middle of it) and put back after.
#[derive(Default)]
struct BatchState {
    heads: HashMap<ChannelId, i64>,
    members: HashMap<ChannelId, Arc<Vec<UserId>>>,
    /// Which records are stored already (replays, resends), messages and events.
    stored: HashMap<MessageId, Placement>,
    /// The stored messages the batch's events and replies name, as they are now.
    targets: HashMap<(ChannelId, i64), Message>,
    /// Stored events of the batch (replays after a crash), to push again.
    stored_events: HashMap<EventId, ChannelEvent>,
    /// Replayed messages whose id row is stored but whose message row is not (see
    /// [`Processor::load_unstored_replays`]): stored again, not only pushed.
    unstored: HashSet<MessageId>,
    /// What the batch's events act on, and what they change.
    applied: Targets,
    /// The accounts the batch's bodies mention by username (lowercase), whether members or not:
    /// membership is decided at each message's place in the partition.
    usernames: HashMap<String, UserId>,
}

/// What a batch produces: new messages and events (each with its record's offset) to store, the
/// state the events leave, and everything to push, in partition order.
#[derive(Default)]
struct Assigned {
    messages: Vec<(Message, i64)>,
    /// Replayed messages stored before: logged again (nothing changes if they are logged; an
    /// older message server stored messages without logging them first).
    relogged: Vec<(Message, i64)>,
    events: Vec<(ChannelEvent, i64)>,
    writes: Vec<StateWrite>,
    outgoing: Vec<Outgoing>,
}

impl Processor {
    /// `channels_cached`: how many channels' heads and member lists are kept between batches.
    /// Raised to `batch_max` if lower, so one batch never evicts its own channels.
    pub fn new(
        db: PgPool,
        store: MessageStore,
        fanout: Fanout,
        activity: Activity,
        logged_since: chrono::DateTime<chrono::Utc>,
        channels_cached: usize,
        batch_max: usize,
    ) -> Self {
        let cap = NonZeroUsize::new(channels_cached.max(batch_max).max(1)).expect("non-zero");
        Processor {
            publisher: Publisher {
                db: db.clone(),
                store: store.clone(),
                fanout,
                activity,
            },
            db,
            store,
            heads: LruCache::new(cap),
            members: LruCache::new(cap),
            unlogged_before_ms: logged_since
                .timestamp_millis()
                .saturating_add(CLOCK_SKEW_MS),
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

    /// The first stage of a batch: load, assign positions, store (steps 1-5). `None` if
    /// shutdown interrupted it before it was stored (then nothing of it may be committed).
    /// Batches pass through it one at a time, in partition order: the next batch's loads see
    /// this one's stored rows and positions.
    pub async fn store(
        &mut self,
        batch: &[Consumed],
        shutdown: &CancellationToken,
    ) -> Option<Stored> {
        let mut state = timed("load", self.load(batch, shutdown)).await?;
        let assigned = assign(batch, &mut state);
        let stored = self.store_assigned(&assigned, shutdown).await;
        for (c, h) in state.heads {
            self.heads.put(c, h);
        }
        for (c, m) in state.members {
            self.members.put(c, m);
        }
        stored.then_some(Stored(assigned))
    }

    /// What publishes stored batches (the second stage), apart from the caches: it runs while
    /// the next batch is loaded and stored.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Steps 1-3, concurrently (independent reads, each retried on its own): which messages
    /// and events are already stored (replays, resends), the heads of channels not cached, the
    /// members of channels not cached (one query for all of them), and the messages the
    /// batch's events and replies name (with the reactions its reactions change).
    async fn load(
        &mut self,
        batch: &[Consumed],
        shutdown: &CancellationToken,
    ) -> Option<BatchState> {
        // Messages' ids are in the log (PostgreSQL); events' in Cassandra, and so are those of
        // messages an older message server may have stored (records produced before this
        // version's first start: only around an upgrade).
        let (mut logged_ids, mut cql_ids) = (Vec::new(), Vec::new());
        for r in batch {
            match &r.record {
                BusRecord::Message(m) => {
                    logged_ids.push(m.id);
                    if r.produced_at_ms.is_none_or(|t| t < self.unlogged_before_ms) {
                        cql_ids.push(m.id);
                    }
                }
                BusRecord::Event(e) => cql_ids.push(placement_key(e.id)),
                BusRecord::Membership(_) => {}
            }
        }
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
        let names = mentioned_in(batch);
        let (store, db) = (&self.store, &self.db);
        let (logged, in_cql, heads, pairs, targets, usernames) = tokio::join!(
            look_up(shutdown, "look up message ids", &logged_ids, |ids| {
                store.logged_places(ids)
            }),
            look_up(shutdown, "look up event ids", &cql_ids, |ids| {
                store.placements_in_cassandra(ids)
            }),
            look_up(shutdown, "read channel heads", &need_head, |channels| {
                futures::future::try_join_all(channels.iter().map(|c| async move {
                    Ok::<_, chat_store::cql::CqlError>((*c, store.head(*c).await?))
                }))
            }),
            look_up(shutdown, "load members", &need_members, |channels| {
                chat_store::pg::member_ids_of(db, channels)
            }),
            self.load_targets(batch, &mut state.applied, shutdown),
            look_up(shutdown, "look up mentioned usernames", &names, |names| {
                chat_store::pg::user_ids_by_username(db, names)
            }),
        );
        let (logged, in_cql, heads, pairs, targets) = (logged?, in_cql?, heads?, pairs?, targets?);
        state.usernames = usernames?.into_iter().collect();
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
        state.stored = stored_places(in_cql, logged);
        state.targets = targets;
        let (stored_events, unstored) = tokio::join!(
            self.load_stored_events(batch, &state.stored, shutdown),
            self.load_unstored_replays(batch, &state.stored, shutdown),
        );
        state.stored_events = stored_events?;
        state.unstored = unstored?;
        Some(state)
    }

    /// Messages of the batch replayed after a crash (their id row names this very record) whose
    /// message row is missing. A batch's id rows are written before its message rows
    /// ([`MessageStore::store`]), so a failure in between leaves the id rows alone, and if the
    /// message server dies before its retry succeeds, the replay finds the id and would only
    /// push the message, leaving it out of history for good. Read back (rare: only replays),
    /// and the missing ones are stored again. A message whose row is missing was never edited,
    /// deleted or reacted to (a change comes after it in its partition, and is stored only
    /// after the message's batch was, rows included), so writing it as sent loses nothing.
    async fn load_unstored_replays(
        &self,
        batch: &[Consumed],
        stored: &HashMap<MessageId, Placement>,
        shutdown: &CancellationToken,
    ) -> Option<HashSet<MessageId>> {
        let mut replayed: HashMap<ChannelId, Vec<(i64, MessageId)>> = HashMap::new();
        for r in batch {
            if let BusRecord::Message(m) = &r.record
                && let Some(p) = stored.get(&m.id)
                && p.kafka_offset == Some(r.offset)
            {
                replayed
                    .entry(p.channel_id)
                    .or_default()
                    .push((p.seq, m.id));
            }
        }
        if replayed.is_empty() {
            return Some(HashSet::new());
        }
        let store = &self.store;
        let found = persist(shutdown, "read replayed messages", || {
            futures::future::try_join_all(replayed.iter().map(|(c, at)| {
                let seqs: Vec<i64> = at.iter().map(|(seq, _)| *seq).collect();
                async move { store.messages_at(*c, &seqs).await }
            }))
        })
        .await?;
        let present: HashSet<MessageId> = found.into_iter().flatten().map(|m| m.id).collect();
        let unstored: HashSet<MessageId> = replayed
            .into_values()
            .flatten()
            .map(|(_, id)| id)
            .filter(|id| !present.contains(id))
            .collect();
        if !unstored.is_empty() {
            tracing::warn!(
                messages = unstored.len(),
                "replayed messages had an id row but no message row: storing them again"
            );
        }
        Some(unstored)
    }

    /// The stored messages the batch's events and replies name (one `IN` read per channel and
    /// bucket), and for its reactions who had reacted so far.
    async fn load_targets(
        &self,
        batch: &[Consumed],
        applied: &mut Targets,
        shutdown: &CancellationToken,
    ) -> Option<HashMap<(ChannelId, i64), Message>> {
        let mut seqs: HashMap<ChannelId, Vec<i64>> = HashMap::new();
        let mut emojis: HashSet<(ChannelId, i64, &str)> = HashSet::new();
        for r in batch {
            match &r.record {
                BusRecord::Message(m) => {
                    if let Some(t) = m.reply_to {
                        seqs.entry(m.channel_id).or_default().push(t.seq);
                    }
                }
                BusRecord::Event(e) => {
                    seqs.entry(e.channel_id).or_default().push(e.target.seq);
                    if let Action::React { emoji } | Action::Unreact { emoji } = &e.action {
                        emojis.insert((e.channel_id, e.target.seq, emoji.as_str()));
                    }
                }
                BusRecord::Membership(_) => {}
            }
        }
        if seqs.is_empty() {
            return Some(HashMap::new());
        }
        let store = &self.store;
        let (messages, reactions) = tokio::join!(
            persist(shutdown, "read replied and changed messages", || {
                futures::future::try_join_all(seqs.iter().map(|(c, s)| store.messages_at(*c, s)))
            }),
            persist(shutdown, "read reactions", || {
                futures::future::try_join_all(emojis.iter().map(|(c, seq, emoji)| async move {
                    let users = store.reaction_users(*c, *seq, emoji).await?;
                    Ok::<_, chat_store::cql::CqlError>((*c, *seq, *emoji, users))
                }))
            }),
        );
        let mut out = HashMap::new();
        for m in messages?.into_iter().flatten() {
            applied.add_message(&m);
            out.insert((m.channel_id, m.seq.unwrap_or(0)), m);
        }
        for (c, seq, emoji, users) in reactions? {
            applied.add_reactions(c, seq, emoji, users);
        }
        Some(out)
    }

    /// Events of the batch already stored by this very record (a replay after a crash): read
    /// back, to be pushed again. Rare, so read one position at a time.
    async fn load_stored_events(
        &self,
        batch: &[Consumed],
        stored: &HashMap<MessageId, Placement>,
        shutdown: &CancellationToken,
    ) -> Option<HashMap<EventId, ChannelEvent>> {
        let replayed: Vec<Placement> = batch
            .iter()
            .filter_map(|r| match &r.record {
                BusRecord::Event(e) => stored
                    .get(&placement_key(e.id))
                    .filter(|p| p.kafka_offset == Some(r.offset))
                    .copied(),
                _ => None,
            })
            .collect();
        if replayed.is_empty() {
            return Some(HashMap::new());
        }
        let store = &self.store;
        let events = persist(shutdown, "read replayed events", || {
            futures::future::try_join_all(
                replayed
                    .iter()
                    .map(|p| store.events_in(p.channel_id, p.seq, p.seq)),
            )
        })
        .await?;
        Some(events.into_iter().flatten().map(|e| (e.id, e)).collect())
    }

    /// Step 5: store before anything is pushed or committed.
    async fn store_assigned(&self, a: &Assigned, shutdown: &CancellationToken) -> bool {
        let store = &self.store;
        let stored = timed("store", async {
            tokio::join!(
                async {
                    (a.messages.is_empty()
                        && a.relogged.is_empty()
                        && a.events.is_empty()
                        && a.writes.is_empty())
                        || persist(shutdown, "store messages and events", || {
                            store.store(&a.messages, &a.relogged, &a.events, &a.writes)
                        })
                        .await
                        .is_some()
                },
                // Before the push: whoever sees a delete can no longer fetch its files.
                self.orphan_attachments(&a.outgoing, shutdown),
                self.attachments_sent(&a.outgoing, shutdown),
            )
        });
        let (rows, orphaned, sent) = stored.await;
        if !(rows && orphaned && sent) {
            return false;
        }
        metrics::counter!("chat_messages_stored_total").increment(a.messages.len() as u64);
        metrics::counter!("chat_events_stored_total").increment(a.events.len() as u64);
        true
    }
}

/// A batch stored, its positions given out, not yet published.
pub struct Stored(Assigned);

/// The second stage of a batch (step 6): publish what the first stored. Batches pass through
/// it one at a time, in partition order (the consume loop starts one only when the one before
/// is done), so pushes and the unread log keep the partition's order.
#[derive(Clone)]
pub struct Publisher {
    db: PgPool,
    store: MessageStore,
    fanout: Fanout,
    activity: Activity,
}

impl Publisher {
    /// Push, and meanwhile move the head hints of channels that entered a new bucket (before
    /// the commit; not beside the insert: a hint must be a stored position) and log edits and
    /// deletes for unread counts and previews (messages were logged when stored: the log is
    /// their id index). A failed push is retried in the background by [`Fanout`]; everything is stored,
    /// and a gateway also fills any gap from history when the next message or event of the
    /// channel arrives. `false` if shutdown interrupted it (then the batch is not committed).
    pub async fn publish(&self, stored: Stored, shutdown: &CancellationToken) -> bool {
        let a = &stored.0;
        let store = &self.store;
        let positions = a
            .messages
            .iter()
            .map(|(m, _)| (m.channel_id, m.seq.unwrap_or(0)))
            .chain(a.events.iter().map(|(e, _)| (e.channel_id, e.seq)));
        let hints = new_bucket_hints(positions);
        // The directory's activity times are only noted: written every 200 ms for all
        // channels (`crate::activity`).
        self.activity.note(&a.messages);
        let (hints_written, logged, ()) = tokio::join!(
            timed("hints", async {
                hints.is_empty()
                    || persist(shutdown, "store head hints", || {
                        store.set_head_hints(&hints)
                    })
                    .await
                    .is_some()
            }),
            timed("log", self.log_changes(&a.writes, shutdown)),
            timed("push", self.fanout.push(&a.outgoing)),
        );
        hints_written && logged
    }

    /// Write the activity times noted so far (the consume loop, after its last batch).
    pub async fn flush_activity(&self) {
        self.activity.flush(&self.db).await;
    }

    /// Edits and deletes into the log unread counts and previews come from: a deleted message
    /// is no longer unread news nor the conversation's last message; an edited one previews
    /// its new body.
    async fn log_changes(&self, writes: &[StateWrite], shutdown: &CancellationToken) -> bool {
        let changes: Vec<chat_store::read_state::LoggedChange> = writes
            .iter()
            .filter_map(|w| match w {
                StateWrite::Edit {
                    channel,
                    seq,
                    body,
                    mentions,
                    ..
                } => Some(chat_store::read_state::LoggedChange::Edited {
                    channel: *channel,
                    seq: *seq,
                    body: body.as_str(),
                    mentions,
                }),
                StateWrite::Delete { channel, seq } => {
                    Some(chat_store::read_state::LoggedChange::Deleted {
                        channel: *channel,
                        seq: *seq,
                    })
                }
                _ => None,
            })
            .collect();
        if changes.is_empty() {
            return true;
        }
        let db = &self.db;
        persist(shutdown, "log edits and deletes", || {
            chat_store::read_state::log_changes(db, &changes)
        })
        .await
        .is_some()
    }
}

impl Processor {
    /// The files of deleted messages (new deletes and replayed ones) are no longer handed out:
    /// their attachments become `orphaned`, for the sweeper. Stored with the batch, before its
    /// push and commit, so a crash cannot skip it; idempotent.
    async fn orphan_attachments(
        &self,
        outgoing: &[Outgoing],
        shutdown: &CancellationToken,
    ) -> bool {
        let deleted: Vec<MessageId> = outgoing
            .iter()
            .filter_map(|o| match &o.event {
                Event::Channel { event } if matches!(event.change, Change::Deleted) => {
                    Some(event.message_id)
                }
                _ => None,
            })
            .collect();
        if deleted.is_empty() {
            return true;
        }
        let db = &self.db;
        persist(shutdown, "orphan attachments of deleted messages", || {
            chat_store::attachments::orphan_of_messages(db, &deleted)
        })
        .await
        .is_some()
    }

    /// The files of every pushed message (new ones and stored ones pushed again after a crash)
    /// are sent: their claims are final, never released by chat-media's sweeper as those of a
    /// send that never reached Kafka. Before the commit, so a crash cannot skip it; idempotent.
    async fn attachments_sent(&self, outgoing: &[Outgoing], shutdown: &CancellationToken) -> bool {
        let files: Vec<(_, MessageId)> = pushed_messages(outgoing)
            .flat_map(|m| m.attachments.iter().map(|f| (f.id, m.id)))
            .collect();
        if files.is_empty() {
            return true;
        }
        let db = &self.db;
        persist(shutdown, "mark attachments sent", || {
            chat_store::attachments::mark_sent(db, &files)
        })
        .await
        .is_some()
    }
}

/// The messages among a batch's pushes (not its channel events).
fn pushed_messages(outgoing: &[Outgoing]) -> impl Iterator<Item = &Message> {
    outgoing.iter().filter_map(|o| match &o.event {
        Event::Message { message } => Some(message),
        _ => None,
    })
}

/// Run `f`, recording how long it took as phase `phase` of a batch
/// (`chat_batch_phase_seconds{phase}`; `chat-bench` prints their means per run).
async fn timed<T>(phase: &'static str, f: impl Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = f.await;
    metrics::histogram!("chat_batch_phase_seconds", "phase" => phase)
        .record(started.elapsed().as_secs_f64());
    out
}

impl BatchState {
    /// The members of `channel` (as the batch has reached it) that `body` mentions.
    fn mentions(&self, channel: ChannelId, body: &str) -> Vec<UserId> {
        mentions_in(&self.members, &self.usernames, channel, body)
    }
}

fn mentions_in(
    members: &HashMap<ChannelId, Arc<Vec<UserId>>>,
    usernames: &HashMap<String, UserId>,
    channel: ChannelId,
    body: &str,
) -> Vec<UserId> {
    if usernames.is_empty() || !body.contains('@') {
        return Vec::new();
    }
    let Some(members) = members.get(&channel) else {
        return Vec::new();
    };
    limits::mentioned_usernames(body)
        .iter()
        .filter_map(|name| usernames.get(name).copied())
        .filter(|u| members.contains(u))
        .collect()
}

/// Every username the batch's new bodies (messages and edits) mention, each once.
fn mentioned_in(batch: &[Consumed]) -> Vec<String> {
    let mut names: HashSet<String> = HashSet::new();
    for r in batch {
        let body = match &r.record {
            BusRecord::Message(m) => m.body.as_str(),
            BusRecord::Event(e) => match &e.action {
                Action::Edit { body } => body.as_str(),
                _ => continue,
            },
            BusRecord::Membership(_) => continue,
        };
        if body.contains('@') {
            names.extend(limits::mentioned_usernames(body));
        }
    }
    names.into_iter().collect()
}

/// Where the batch's ids are stored, from Cassandra's `message_ids` (events; messages an older
/// version may have stored) and the log: the log's, unless an older version logged the message
/// without its record's offset and Cassandra has it (which says whether this record is the one
/// that stored it: a replay to push, or a resend to drop).
fn stored_places(
    in_cql: Vec<(MessageId, Placement)>,
    logged: Vec<(MessageId, Placement)>,
) -> HashMap<MessageId, Placement> {
    let mut stored: HashMap<MessageId, Placement> = in_cql.into_iter().collect();
    for (id, p) in logged {
        if p.kafka_offset.is_some() || !stored.contains_key(&id) {
            stored.insert(id, p);
        }
    }
    stored
}

/// Step 4: positions, in partition order; membership changes applied where they happened;
/// events applied (or found moot) against the state the batch has reached.
fn assign(batch: &[Consumed], state: &mut BatchState) -> Assigned {
    let mut out = Assigned {
        outgoing: Vec::with_capacity(batch.len()),
        ..Assigned::default()
    };
    let mut seen_in_batch: HashSet<MessageId> = HashSet::new();
    let members_of = |state: &BatchState, c: ChannelId| -> Arc<Vec<UserId>> {
        state.members.get(&c).cloned().unwrap_or_default()
    };
    for r in batch {
        match &r.record {
            BusRecord::Message(m) => {
                if let Some(p) = state.stored.get(&m.id).copied() {
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
                    // has, by position), and store it again if only its id row was written.
                    let mut message = m.to_message(Some(p.seq));
                    message.channel_id = p.channel_id;
                    message.reply_to = m.reply_to.map(|t| reply_preview(t, p.channel_id, state));
                    message.mentions = state.mentions(p.channel_id, &message.body);
                    if state.unstored.contains(&m.id) {
                        out.messages.push((message.clone(), r.offset));
                    } else {
                        out.relogged.push((message.clone(), r.offset));
                    }
                    out.outgoing.push(Outgoing {
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
                let mut message = m.to_message(Some(*head));
                message.reply_to = m.reply_to.map(|t| reply_preview(t, m.channel_id, state));
                message.mentions = state.mentions(m.channel_id, &message.body);
                out.messages.push((message.clone(), r.offset));
                out.outgoing.push(Outgoing {
                    event: Event::Message { message },
                    recipients: members_of(state, m.channel_id),
                });
            }
            BusRecord::Event(e) => {
                let key = placement_key(e.id);
                if let Some(p) = state.stored.get(&key).copied() {
                    if let Some(head) = state.heads.get_mut(&p.channel_id) {
                        *head = (*head).max(p.seq);
                    }
                    if p.kafka_offset != Some(r.offset) {
                        continue; // a resend of a stored event
                    }
                    if let Some(event) = state.stored_events.get(&e.id).cloned() {
                        state.applied.reapply(&event);
                        out.outgoing.push(Outgoing {
                            event: Event::Channel { event },
                            recipients: members_of(state, p.channel_id),
                        });
                        continue;
                    }
                    // Only its id row was written (see `load_unstored_replays`): apply it and
                    // store it at the position it was given then. Not moot now: the state it
                    // meets is the one it met (the records before it are stored or replayed).
                    let (members, usernames) = (&state.members, &state.usernames);
                    let mentions_of =
                        |body: &str| mentions_in(members, usernames, p.channel_id, body);
                    if let Some(change) = state.applied.apply(e, mentions_of) {
                        tracing::warn!(event = %e.id, "a replayed event had an id row but no event row: storing it again");
                        let event = event_at(e, p.seq, change);
                        out.events.push((event.clone(), r.offset));
                        out.outgoing.push(Outgoing {
                            event: Event::Channel { event },
                            recipients: members_of(state, p.channel_id),
                        });
                    }
                    continue;
                }
                if !seen_in_batch.insert(key) {
                    continue;
                }
                let (members, usernames) = (&state.members, &state.usernames);
                let mentions_of = |body: &str| mentions_in(members, usernames, e.channel_id, body);
                let Some(change) = state.applied.apply(e, mentions_of) else {
                    metrics::counter!("chat_events_moot_total").increment(1);
                    continue;
                };
                let head = state.heads.entry(e.channel_id).or_insert(0);
                *head += 1;
                let event = event_at(e, *head, change);
                out.events.push((event.clone(), r.offset));
                out.outgoing.push(Outgoing {
                    event: Event::Channel { event },
                    recipients: members_of(state, e.channel_id),
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
                out.outgoing.push(Outgoing {
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
    out.writes = std::mem::take(&mut state.applied).into_writes();
    out
}

/// The preview of a replied-to message as the batch knows it (stored; deleted if a delete of
/// the batch came first).
fn reply_preview(t: Target, channel: ChannelId, state: &BatchState) -> Box<ReplyPreview> {
    let found = state.targets.get(&(channel, t.seq));
    let deleted = found.is_some_and(|m| m.deleted) || state.applied.is_deleted(channel, t.seq);
    Box::new(ReplyPreview {
        id: t.id,
        seq: t.seq,
        sender_id: found.map_or(UserId(Default::default()), |m| m.sender_id),
        preview: match found {
            Some(m) if !deleted => m.body.chars().take(limits::PREVIEW_MAX_CHARS).collect(),
            _ => String::new(),
        },
        deleted,
    })
}

/// The channels whose new positions (messages and events, in order) entered a new bucket, with
/// their last new position.
fn new_bucket_hints(positions: impl Iterator<Item = (ChannelId, i64)>) -> Vec<(ChannelId, i64)> {
    let mut first_new: HashMap<ChannelId, (i64, i64)> = HashMap::new();
    for (c, seq) in positions {
        first_new
            .entry(c)
            .and_modify(|(first, last)| {
                *first = (*first).min(seq);
                *last = (*last).max(seq);
            })
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

/// [`persist`] for a lookup by keys: no keys is an empty answer, without a round trip.
async fn look_up<'k, K, T, E, F, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    keys: &'k [K],
    mut op: F,
) -> Option<Vec<T>>
where
    F: FnMut(&'k [K]) -> Fut,
    Fut: Future<Output = Result<Vec<T>, E>>,
    E: std::fmt::Display,
{
    if keys.is_empty() {
        return Some(Vec::new());
    }
    persist(shutdown, what, || op(keys)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn place(channel: u128, seq: i64, kafka_offset: Option<i64>) -> Placement {
        Placement {
            channel_id: ChannelId(Uuid::from_u128(channel)),
            seq,
            kafka_offset,
        }
    }

    #[test]
    fn the_log_names_where_a_message_is_unless_an_older_version_logged_it_without_its_offset() {
        let (new, old, event) = (
            MessageId(Uuid::from_u128(1)),
            MessageId(Uuid::from_u128(2)),
            MessageId(Uuid::from_u128(3)),
        );
        let only_logged = MessageId(Uuid::from_u128(4));
        let stored = stored_places(
            vec![
                (old, place(9, 5, Some(50))),
                (event, place(9, 6, Some(60))),
                (new, place(9, 7, Some(70))),
            ],
            vec![
                (new, place(9, 7, Some(71))),
                (old, place(9, 5, None)),
                (only_logged, place(9, 8, None)),
            ],
        );
        assert_eq!(stored[&new].kafka_offset, Some(71), "the log's offset");
        assert_eq!(stored[&old].kafka_offset, Some(50), "Cassandra's offset");
        assert_eq!(stored[&event], place(9, 6, Some(60)));
        assert_eq!(stored[&only_logged], place(9, 8, None));
        assert_eq!(stored.len(), 4);
    }
}
