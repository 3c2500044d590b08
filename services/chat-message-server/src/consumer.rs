//! The Kafka loop. Offsets are stored and committed only after a batch is fully handled
//! (stored and pushed), so a crash replays at most the batch in hand, and replays are recognised
//! by [`crate::process`]. Any rebalance drops the per-channel caches: another server may have
//! moved a channel on while this one did not own it.

use crate::Config;
use crate::process::{Processor, Record};
use chat_types::bus::BusRecord;
use futures::FutureExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message as _;
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Counts rebalances, so the processing loop knows when its caches went stale.
const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

pub struct GroupContext {
    generation: Arc<AtomicU64>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Everything handled so far has its offset stored; commit it before the partitions
            // go, so the next owner does not replay them.
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "commit on revoke (nothing to commit is fine)");
            }
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

pub async fn run(
    cfg: &Config,
    mut processor: Processor,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let generation = Arc::new(AtomicU64::new(0));
    let consumer: StreamConsumer<GroupContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.kafka.brokers)
        .set("group.id", &cfg.kafka.consumer_group)
        .set("client.id", &cfg.message_server.id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A killed server's partitions move after 6 s (the broker's minimum), not 45 s.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1500")
        // A fetch returns as soon as one record is there (fetch.min.bytes = 1), so a long wait
        // adds no latency; a short one only makes idle consumers poll the broker (measured: 5 ms
        // kept Kafka 17 % busy with the stack idle).
        .set("fetch.wait.max.ms", "200")
        .create_with_context(GroupContext {
            generation: generation.clone(),
        })?;
    consumer.subscribe(&[&cfg.kafka.topic])?;
    tracing::info!(topic = %cfg.kafka.topic, group = %cfg.kafka.consumer_group, "consuming");

    let mut seen_generation = generation.load(Ordering::SeqCst);
    let max = cfg.message_server.batch_max;
    let mut batch: Vec<Record> = Vec::with_capacity(max);
    let mut last_offsets: HashMap<i32, i64> = HashMap::new();
    // Offsets are stored after every batch but committed at most every COMMIT_EVERY (and on
    // revoke and shutdown): each commit is a write to `__consumer_offsets`. A crash replays at
    // most that much more, which the stored message ids make harmless.
    let mut last_commit = Instant::now();
    let mut uncommitted = false;
    loop {
        let commit_at = tokio::time::Instant::from_std(last_commit + COMMIT_EVERY);
        let first = tokio::select! {
            m = consumer.recv() => m,
            _ = shutdown.cancelled() => break,
            // Traffic stopped with offsets stored but not committed: commit them now.
            _ = tokio::time::sleep_until(commit_at), if uncommitted => {
                commit(&consumer, &mut last_commit, &mut uncommitted);
                continue;
            }
        };
        batch.clear();
        last_offsets.clear();
        match first {
            Ok(m) => take(&m, &mut batch, &mut last_offsets),
            Err(e) => {
                tracing::warn!(error = %e, "kafka receive error");
                continue;
            }
        }
        // Take whatever else is already fetched, without waiting: batches grow with load.
        while batch.len() < max {
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => take(&m, &mut batch, &mut last_offsets),
                _ => break,
            }
        }

        let now_generation = generation.load(Ordering::SeqCst);
        if now_generation != seen_generation {
            processor.forget_channels();
            seen_generation = now_generation;
        }

        let started = Instant::now();
        if !processor.handle(&batch, &shutdown).await {
            // Shutting down with the batch unfinished: do not commit it; the next owner replays it.
            break;
        }
        metrics::histogram!("chat_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("chat_records_total").increment(batch.len() as u64);

        let mut tpl = TopicPartitionList::new();
        for (p, o) in &last_offsets {
            tpl.add_partition_offset(&cfg.kafka.topic, *p, rdkafka::Offset::Offset(o + 1))?;
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            tracing::warn!(error = %e, "offset store failed; the records may be replayed");
        } else {
            uncommitted = true;
            if last_commit.elapsed() >= COMMIT_EVERY {
                commit(&consumer, &mut last_commit, &mut uncommitted);
            }
        }
    }
    // Commit what was handled before leaving the group.
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    tracing::info!("consumer stopped");
    Ok(())
}

/// Parse a record into the batch; a record that is not a `BusRecord` is counted and skipped
/// (its offset still advances: it can never become valid).
fn commit(
    consumer: &StreamConsumer<GroupContext>,
    last_commit: &mut Instant,
    uncommitted: &mut bool,
) {
    *last_commit = Instant::now();
    *uncommitted = false;
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
        tracing::warn!(error = %e, "offset commit failed; the records may be replayed");
    }
}

fn take(
    m: &rdkafka::message::BorrowedMessage<'_>,
    batch: &mut Vec<Record>,
    last_offsets: &mut HashMap<i32, i64>,
) {
    last_offsets.insert(m.partition(), m.offset());
    match m.payload().map(serde_json::from_slice::<BusRecord>) {
        Some(Ok(record)) => batch.push(Record {
            partition: m.partition(),
            offset: m.offset(),
            record,
        }),
        other => {
            metrics::counter!("chat_records_malformed_total").increment(1);
            tracing::error!(partition = m.partition(), offset = m.offset(),
                error = ?other.and_then(Result::err), "skipping a record that is not a BusRecord");
        }
    }
}
