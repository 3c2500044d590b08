//! The Kafka loop. Offsets are stored only after a batch is fully handled (stored and
//! published) and committed at most every [`COMMIT_EVERY`](chat_store::bus::consumer::COMMIT_EVERY), so a
//! crash replays at most the batch in hand plus that much, and replays are recognised by
//! [`crate::process`]. Any rebalance drops the per-channel caches: another server may have moved
//! a channel on while this one did not own it.

use crate::process::{Processor, Publisher, Stored};
use chat_store::bus::{Batch, GroupConsumer};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// A batch being published: resolves to its offsets once it is (`None` if shutdown
/// interrupted it: then it is not committed).
type Publishing = BoxFuture<'static, Option<HashMap<i32, i64>>>;

/// Consume until `shutdown`. Batches go through two stages (see [`crate::process`]): the next
/// batch is loaded and stored while the one before it is published, and a batch is published
/// only once the one before it is, so pushes keep the partition's order; a batch's offsets
/// are stored when it is published. On shutdown the batch being published is finished (or,
/// if shutdown interrupts its storing or logging, left uncommitted for the next owner), then
/// what was handled is committed.
pub async fn run(
    consumer: GroupConsumer,
    mut processor: Processor,
    batch_max: usize,
    shutdown: CancellationToken,
) {
    let publisher = processor.publisher();
    let mut seen_generation = consumer.generation();
    let mut batch = Batch::default();
    let mut publishing: Option<Publishing> = None;
    loop {
        tokio::select! {
            r = consumer.next_batch(batch_max, &mut batch) => {
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
            // Nothing new arrived while a batch was being published: finish it.
            offsets = async { publishing.as_mut().expect("guarded").await }, if publishing.is_some() => {
                publishing = None;
                if !handled(&consumer, offsets) {
                    break;
                }
                continue;
            }
            _ = shutdown.cancelled() => break,
            // Traffic stopped with offsets stored but not committed: commit them when due.
            _ = consumer.commit_when_due() => continue,
        }

        let now_generation = consumer.generation();
        if now_generation != seen_generation {
            processor.forget_channels();
            seen_generation = now_generation;
        }

        record_waits(&batch);
        let started = Instant::now();
        // Store this batch while the one before it is published.
        let (stored, published) = tokio::join!(processor.store(&batch.records, &shutdown), async {
            match publishing.take() {
                Some(p) => handled(&consumer, p.await),
                None => true,
            }
        });
        // Shutting down with a batch unpublished or this one unstored: neither is committed
        // (nor anything after them: a later offset would commit them too); the next owner
        // replays them.
        let Some(stored) = stored.filter(|_| published) else {
            break;
        };
        metrics::counter!("chat_records_total").increment(batch.records.len() as u64);
        publishing = Some(publish(
            publisher.clone(),
            stored,
            batch.last_offsets.clone(),
            started,
            shutdown.clone(),
        ));
    }
    if let Some(p) = publishing.take() {
        handled(&consumer, p.await);
    }
    publisher.flush_activity().await;
    // Commit what was handled before leaving the group.
    if let Err(e) = consumer.commit_now() {
        tracing::debug!(error = %e, "final commit (nothing to commit is fine)");
    }
    tracing::info!("consumer stopped");
}

/// Publish a stored batch; its offsets once done. `chat_batch_seconds` is a batch's whole
/// time, from the start of its first stage to the end of its second.
fn publish(
    publisher: Publisher,
    stored: Stored,
    offsets: HashMap<i32, i64>,
    started: Instant,
    shutdown: CancellationToken,
) -> Publishing {
    Box::pin(async move {
        if !publisher.publish(stored, &shutdown).await {
            return None;
        }
        metrics::histogram!("chat_batch_seconds").record(started.elapsed().as_secs_f64());
        Some(offsets)
    })
}

/// Store the offsets of a published batch (committed when due). `false` if it was not
/// published (shutdown interrupted it): then no later batch may be published either.
fn handled(consumer: &GroupConsumer, offsets: Option<HashMap<i32, i64>>) -> bool {
    let Some(last_offsets) = offsets else {
        return false;
    };
    if let Err(e) = consumer.handled(&last_offsets) {
        tracing::warn!(error = %e, "offset store failed; the records may be replayed");
    }
    true
}

/// How long each record waited between its producer handing it to Kafka and this batch starting
/// (the produce, Kafka, the fetch, and the batches ahead of it): the first hop of the latency
/// breakdown `chat-bench` prints, beside the batch's phases (`chat_batch_phase_seconds`).
fn record_waits(batch: &Batch) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let waits = metrics::histogram!("chat_record_wait_seconds");
    for r in &batch.records {
        if let Some(at) = r.produced_at_ms {
            // Clocks of other hosts may be a little ahead: a negative wait counts as none.
            waits.record((now_ms - at).max(0) as f64 / 1000.0);
        }
    }
}
