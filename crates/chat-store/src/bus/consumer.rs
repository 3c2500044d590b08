//! A member of a consumer group of the `messages` topic, for at-least-once handling: offsets are
//! stored only when the caller says a batch is handled, and committed on a cadence (at most every
//! [`COMMIT_EVERY`], one commit in flight at a time), on revoke and on shutdown. A rebalance
//! moves a generation counter, so the caller knows when what it cached about its partitions went
//! stale (another member may have moved them on meanwhile).
//!
//! Why the commit cadence is bounded: the group coordinator answers one request of a connection
//! at a time, and a member's heartbeats share the connection with its commits. An offset commit
//! waits until every in-sync replica of `__consumer_offsets` has it, so on a loaded cluster it
//! can take a second or more; commits sent every 100 ms queued up ahead of the heartbeats, a
//! heartbeat waited out its time-out (librdkafka's: the heartbeat interval, 1.5 s), librdkafka
//! dropped the connection with the answer that carried the member's new epoch, the next commits
//! were refused ("member epoch is stale") and the member gave up all its partitions and rejoined:
//! every channel it held paused for 5-20 s although nothing had failed.
//!
//! Why a commit runs on a blocking thread: librdkafka reports an asynchronous commit's outcome
//! only to a reply queue or callback given with it, and rust-rdkafka 0.37 gives neither
//! ([fede1024/rust-rdkafka#856](https://github.com/fede1024/rust-rdkafka/issues/856), open),
//! so `ConsumerContext::commit_callback` never ran. The member waited for that answer before
//! its next commit and never committed again after its first: a member losing its partitions
//! (a crash, a Kafka restart) handed them on from where it had started, and minutes of records
//! were replayed. A synchronous commit returns its outcome; on a thread of its own it holds
//! nothing else up, and the next one is sent only after it returned.
//!
//! The group speaks Kafka 4's consumer group protocol (KIP-848): the broker computes the
//! assignment and hands partitions over incrementally, so a member joining or leaving moves only
//! the partitions that change owner; every other partition keeps being consumed (the classic
//! protocol stopped the whole group for each rebalance). Session and heartbeat timing are the
//! broker's (`group.consumer.*` in deploy/kafka/server.properties.template). Membership is
//! dynamic, not static (KIP-345), on purpose: a member that leaves hands its partitions over at
//! once, where a static one would hold them for the session timeout, and under KIP-848 a static
//! member restarted after a `kill -9` is refused (fatally) until its predecessor's session ends.

use chat_common::config::KafkaConfig;
use chat_types::bus::BusRecord;
use futures::FutureExt;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Stored offsets are committed at most this often. A crash replays what was handled since the
/// last commit (every consumer of ours recognises replays), so this bounds replay work, not
/// correctness; each commit is a replicated write on the coordinator (see the module docs).
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// One record of a batch, parsed.
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    /// When the producer (a gateway or the API) handed the record to Kafka, in milliseconds
    /// since the epoch (the record's CreateTime), if the broker kept one: how long a record
    /// waited before a consumer took it is measured from here.
    pub produced_at_ms: Option<i64>,
    pub record: BusRecord,
}

/// Records taken together, and the last offset seen per partition (malformed records included:
/// they can never become valid, so their offsets advance too).
#[derive(Default)]
pub struct Batch {
    pub records: Vec<Consumed>,
    pub last_offsets: HashMap<i32, i64>,
    /// The group's generation when the batch began: a rebalance since may have revoked
    /// partitions some of its records came from.
    generation: u64,
}

struct GroupContext {
    generation: Arc<AtomicU64>,
    assigned: Arc<AtomicUsize>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    // The protocol is incremental: `Assign` lists only the partitions added and `Revoke` only
    // those taken away (rust-rdkafka's default `rebalance` applies them with
    // `incremental_assign` / `incremental_unassign`), so the count moves by the difference.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Everything handled so far has its offset stored; commit it before the partitions
            // go, so the next owner does not replay them.
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "commit on revoke (nothing to commit is fine)");
            }
            count_per_partition(tpl, "chat_kafka_partition_revoked_total");
            let revoked = tpl.count();
            let held = self
                .assigned
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_sub(revoked))
                })
                .map_or(0, |n| n.saturating_sub(revoked));
            metrics::gauge!("chat_kafka_partitions_held").set(held as f64);
            tracing::info!(revoked, held, "partitions revoked");
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            count_per_partition(tpl, "chat_kafka_partition_assigned_total");
            let added = tpl.count();
            let held = self.assigned.fetch_add(added, Ordering::SeqCst) + added;
            metrics::gauge!("chat_kafka_partitions_held").set(held as f64);
            tracing::info!(added, held, "partitions assigned");
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Commit the stored offsets and wait for the coordinator's answer (blocking), counted by
/// outcome.
fn commit_stored_offsets(consumer: &StreamConsumer<GroupContext>) -> Result<(), KafkaError> {
    let result = consumer.commit_consumer_state(CommitMode::Sync);
    let outcome = match &result {
        Ok(()) => "ok",
        // Nothing stored since the last commit: not a failure.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => "empty",
        Err(_) => "failed",
    };
    metrics::counter!("chat_kafka_commits_total", "outcome" => outcome).increment(1);
    result
}

/// Per partition, how often this member was given it or had it taken away: which member holds
/// which partition, and whether a rebalance moved only what it had to (the e2e test of a
/// message server restarting reads them).
fn count_per_partition(tpl: &TopicPartitionList, name: &'static str) {
    for e in tpl.elements() {
        metrics::counter!(name, "partition" => e.partition().to_string()).increment(1);
    }
}

pub struct GroupConsumer {
    /// Shared with the thread of the commit in flight.
    inner: Arc<StreamConsumer<GroupContext>>,
    topic: String,
    generation: Arc<AtomicU64>,
    assigned: Arc<AtomicUsize>,
    /// Set while a commit's thread waits for the coordinator.
    commit_in_flight: Arc<AtomicBool>,
    /// Shared with the thread of the commit in flight, which marks its offsets uncommitted
    /// again if the commit failed.
    pace: Arc<Mutex<CommitPace>>,
}

/// When a commit was last sent or deferred, and whether offsets were stored since.
struct CommitPace {
    last: Instant,
    uncommitted: bool,
}

/// How a consumer's fetches wait at the broker: a fetch is answered once it has `min_bytes`,
/// or after `max_wait_ms` with whatever there is. Every fetch answered costs Kafka about as
/// much as a produce (~160 µs of CPU here, docs/benchmarks.md), so a consumer that does not
/// need each record at once should let records gather.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchPolicy {
    pub min_bytes: u32,
    pub max_wait_ms: u32,
}

impl FetchPolicy {
    /// Each record as soon as it is there (the message servers: delivery latency). The long
    /// wait then adds no latency; a short one would only make idle consumers poll the broker
    /// (measured: 5 ms kept Kafka 17 % busy with the stack idle).
    pub const PROMPT: FetchPolicy = FetchPolicy {
        min_bytes: 1,
        max_wait_ms: 200,
    };
}

impl GroupConsumer {
    /// Join the consumer group `group` and subscribe to the topic from where the group left
    /// off (from the oldest record for a new group). `client_id` names this member in the
    /// broker's logs. Each purpose has its own group: the message servers
    /// (`cfg.consumer_group`) and the notifier read the same records independently.
    pub fn subscribe(
        cfg: &KafkaConfig,
        group: &str,
        client_id: &str,
        fetch: FetchPolicy,
    ) -> Result<Self, KafkaError> {
        let generation = Arc::new(AtomicU64::new(0));
        let assigned = Arc::new(AtomicUsize::new(0));
        let inner: StreamConsumer<GroupContext> = super::client_config(cfg)
            .set("group.id", group)
            .set("client.id", client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // KIP-848. A killed member's partitions move after the broker's
            // `group.consumer.session.timeout.ms` (6 s in our configurations, not 45 s).
            .set("group.protocol", "consumer")
            .set("fetch.min.bytes", fetch.min_bytes.to_string())
            .set("fetch.wait.max.ms", fetch.max_wait_ms.to_string())
            .create_with_context(GroupContext {
                generation: generation.clone(),
                assigned: assigned.clone(),
            })?;
        inner.subscribe(&[&cfg.topic])?;
        Ok(GroupConsumer {
            inner: Arc::new(inner),
            topic: cfg.topic.clone(),
            generation,
            assigned,
            commit_in_flight: Arc::new(AtomicBool::new(false)),
            pace: Arc::new(Mutex::new(CommitPace {
                last: Instant::now(),
                uncommitted: false,
            })),
        })
    }

    /// Moves on every rebalance.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// How many partitions this member holds, kept current by rebalances (0 until the group
    /// has assigned it some): a readiness check can hold it after the consumer moved away.
    pub fn assigned_partitions(&self) -> Arc<AtomicUsize> {
        self.assigned.clone()
    }

    /// Wait for a record, then take whatever else is already fetched without waiting, up to
    /// `max` records: batches grow with load and cost no latency when it is light. Cancel-safe.
    ///
    /// Rebalances run inside `recv`. One that revokes a partition after some of its records
    /// were taken into this batch leaves them out again: the commit on revoke did not cover
    /// them, so the partition's next owner handles them, and handling them here as well would
    /// deliver them twice and race that owner.
    pub async fn next_batch(&self, max: usize, batch: &mut Batch) -> Result<(), KafkaError> {
        batch.records.clear();
        batch.last_offsets.clear();
        let first = self.inner.recv().await?;
        batch.generation = self.generation();
        take(&first, batch);
        while batch.records.len() < max {
            match self.inner.recv().now_or_never() {
                Some(Ok(m)) => take(&m, batch),
                _ => break,
            }
        }
        if self.generation() != batch.generation {
            self.keep_assigned(batch)?;
        }
        Ok(())
    }

    /// Add the records that arrive until `until` to a batch [`Self::next_batch`] began, up to
    /// `max` in all: for consumers whose cost is per batch rather than per record, and who can
    /// wait a little (the notifier). Records of partitions revoked meanwhile are left out, as
    /// in `next_batch` (an error means that could not be done: drop the batch, as after an
    /// error of `next_batch`). A receive error ends the filling; the records taken stand.
    /// Cancelling keeps the records taken so far in `batch`.
    pub async fn fill_batch(
        &self,
        max: usize,
        until: tokio::time::Instant,
        batch: &mut Batch,
    ) -> Result<(), KafkaError> {
        while batch.records.len() < max {
            match tokio::time::timeout_at(until, self.inner.recv()).await {
                Ok(Ok(m)) => take(&m, batch),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kafka receive error; the batch goes as it is");
                    break;
                }
                Err(_) => break,
            }
        }
        if self.generation() != batch.generation {
            self.keep_assigned(batch)?;
        }
        Ok(())
    }

    /// Drop the records (and offsets) of partitions this member no longer holds.
    fn keep_assigned(&self, batch: &mut Batch) -> Result<(), KafkaError> {
        let held = self.inner.assignment()?;
        let holds = |p: i32| held.find_partition(&self.topic, p).is_some();
        let before = batch.records.len();
        batch.records.retain(|r| holds(r.partition));
        batch.last_offsets.retain(|p, _| holds(*p));
        if batch.records.len() < before {
            tracing::info!(
                left = before - batch.records.len(),
                "records of revoked partitions left to their next owner"
            );
        }
        Ok(())
    }

    /// The error that ended this member for good (librdkafka's fatal errors, e.g. the group
    /// refusing it), if any: the caller should stop and let its supervisor start it afresh.
    pub fn fatal_error(&self) -> Option<String> {
        self.inner
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code}: {reason}"))
    }

    /// The batch is handled: store the offsets after it; they are committed once due (see
    /// [`Self::commit_when_due`]), right away if the last commit is [`COMMIT_EVERY`] old.
    /// `last_offsets`: the batch's [`Batch::last_offsets`].
    pub fn handled(&self, last_offsets: &HashMap<i32, i64>) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in last_offsets {
            tpl.add_partition_offset(&self.topic, *p, rdkafka::Offset::Offset(o + 1))?;
        }
        self.inner.store_offsets(&tpl)?;
        let mut pace = lock(&self.pace);
        pace.uncommitted = true;
        if pace.last.elapsed() >= COMMIT_EVERY {
            self.commit_stored(&mut pace);
        }
        Ok(())
    }

    /// Resolves when stored offsets are due to be committed and commits them: for the consume
    /// loop's `select!`, so that offsets stored just before traffic stopped are committed too.
    /// While a commit is in flight it also resolves every [`COMMIT_EVERY`], so that a failed
    /// one is tried again without new traffic. Pending for ever while nothing is stored or in
    /// flight. Cancel-safe (it only sleeps before committing).
    pub async fn commit_when_due(&self) {
        let due = {
            let pace = lock(&self.pace);
            (pace.uncommitted || self.commit_in_flight.load(Ordering::SeqCst))
                .then_some(pace.last + COMMIT_EVERY)
        };
        match due {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
        let mut pace = lock(&self.pace);
        if pace.uncommitted {
            self.commit_stored(&mut pace);
        } else {
            pace.last = Instant::now();
        }
    }

    /// Send the stored offsets on a thread of its own, unless the previous commit is still
    /// unanswered: a second one would only queue ahead of the heartbeats (module docs); the
    /// offsets stay marked uncommitted for the next try. Either way the next try is
    /// [`COMMIT_EVERY`] later. A commit takes every offset stored until it is sent.
    fn commit_stored(&self, pace: &mut CommitPace) {
        pace.last = Instant::now();
        if self.commit_in_flight.swap(true, Ordering::SeqCst) {
            metrics::counter!("chat_kafka_commits_deferred_total").increment(1);
            return;
        }
        pace.uncommitted = false;
        let (consumer, in_flight) = (self.inner.clone(), self.commit_in_flight.clone());
        let shared = self.pace.clone();
        tokio::task::spawn_blocking(move || {
            match commit_stored_offsets(&consumer) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "offset commit failed; trying again");
                    lock(&shared).uncommitted = true;
                }
            }
            in_flight.store(false, Ordering::SeqCst);
        });
    }

    /// Commit the stored offsets and wait for the broker (shutdown: leaving the group next).
    pub fn commit_now(&self) -> Result<(), KafkaError> {
        commit_stored_offsets(&self.inner)
    }
}

fn lock(pace: &Mutex<CommitPace>) -> std::sync::MutexGuard<'_, CommitPace> {
    // Nothing panics while holding it; a poisoned lock still holds valid times.
    pace.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parse a record into the batch; a record that is not a `BusRecord` is counted and skipped.
fn take(m: &rdkafka::message::BorrowedMessage<'_>, batch: &mut Batch) {
    batch.last_offsets.insert(m.partition(), m.offset());
    match m.payload().map(serde_json::from_slice::<BusRecord>) {
        Some(Ok(record)) => batch.records.push(Consumed {
            partition: m.partition(),
            offset: m.offset(),
            produced_at_ms: m.timestamp().to_millis(),
            record,
        }),
        other => {
            metrics::counter!("chat_records_malformed_total").increment(1);
            tracing::error!(partition = m.partition(), offset = m.offset(),
                error = ?other.and_then(Result::err), "skipping a record that is not a BusRecord");
        }
    }
}
