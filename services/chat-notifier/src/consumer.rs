//! The Kafka loop: decide a batch, write its deliveries into the outbox, store the offsets,
//! then hand the newly written deliveries to the sender. The offsets move only once the
//! deliveries are durable, so a crash before that replays the batch (and decides it again,
//! inserting nothing twice) and a crash after it leaves the rows to the recovery loop.

use crate::decide::Decider;
use crate::sender::Sender;
use chat_store::bus::{Batch, GroupConsumer};
use chat_store::push_outbox;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the loop forms its batches.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// Most records in one batch.
    pub max: usize,
    /// How long a batch waits for more records after its first.
    pub linger: Duration,
}

pub async fn run(
    consumer: GroupConsumer,
    decider: Decider,
    sender: Arc<Sender>,
    batching: Batching,
    shutdown: CancellationToken,
) {
    let mut batch = Batch::default();
    loop {
        tokio::select! {
            r = consumer.next_batch(batching.max, &mut batch) => {
                if let Err(e) = r {
                    if let Some(fatal) = consumer.fatal_error() {
                        // This member can never consume again: stop the process (its
                        // supervisor starts a fresh one) instead of idling as a zombie.
                        tracing::error!(error = %fatal, "kafka consumer failed for good; stopping");
                        shutdown.cancel();
                        break;
                    }
                    tracing::warn!(error = %e, "kafka receive error");
                    continue;
                }
            }
            _ = shutdown.cancelled() => break,
            _ = consumer.commit_when_due() => continue,
        }
        // Outside the select above: a commit coming due must not drop a batch being filled.
        if !batching.linger.is_zero() && batch.records.len() < batching.max {
            let until = Instant::now() + batching.linger;
            tokio::select! {
                r = consumer.fill_batch(batching.max, until, &mut batch) => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "kafka assignment unknown; batch dropped");
                        continue;
                    }
                }
                // Nothing of the batch is stored: its next owner replays it.
                _ = shutdown.cancelled() => break,
            }
        }
        let started = std::time::Instant::now();
        let Some((rows, leased_at)) = outbox(&decider, &sender, &batch, &shutdown).await else {
            break; // shutting down with the batch undecided: the next owner replays it
        };
        metrics::histogram!("chat_notifier_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("chat_notifier_records_total").increment(batch.records.len() as u64);
        if let Err(e) = consumer.handled(&batch.last_offsets) {
            tracing::warn!(error = %e, "offset store failed; the records may be replayed");
        }
        if !rows.is_empty() {
            sender.dispatch(rows, leased_at);
        }
    }
    if let Err(e) = consumer.commit_now() {
        tracing::debug!(error = %e, "final commit (nothing to commit is fine)");
    }
    tracing::info!("consumer stopped");
}

/// Decide the batch and write its deliveries, retrying (with backoff) until it works or
/// shutdown: a batch is never skipped. Returns the rows newly written and when their lease
/// began.
async fn outbox(
    decider: &Decider,
    sender: &Sender,
    batch: &Batch,
    shutdown: &CancellationToken,
) -> Option<(Vec<push_outbox::Delivery>, Instant)> {
    let mut delays =
        chat_common::retry::backoff(Duration::from_millis(100), Duration::from_secs(5), None);
    loop {
        let attempt = async {
            let decided = decider.decide(&batch.records).await?;
            let leased_at = Instant::now();
            let rows = push_outbox::insert(sender.db(), &decided, sender.lease()).await?;
            anyhow::Ok((rows, leased_at))
        };
        match attempt.await {
            Ok(r) => return Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "could not decide a batch; retrying");
                let d = delays.next().unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}
