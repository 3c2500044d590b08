//! The Kafka loop. Offsets are stored only after a batch is fully handled (stored and pushed)
//! and committed at most every [`COMMIT_EVERY`](chat_store::bus::consumer::COMMIT_EVERY), so a
//! crash replays at most the batch in hand plus that much, and replays are recognised by
//! [`crate::process`]. Any rebalance drops the per-channel caches: another server may have moved
//! a channel on while this one did not own it.

use crate::process::Processor;
use chat_store::bus::{Batch, GroupConsumer};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Consume until `shutdown`; the batch in hand is finished (or, if shutdown interrupts its
/// storing, left uncommitted for the next owner), then what was handled is committed.
pub async fn run(
    consumer: GroupConsumer,
    mut processor: Processor,
    batch_max: usize,
    shutdown: CancellationToken,
) {
    let mut seen_generation = consumer.generation();
    let mut batch = Batch::default();
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
        if !processor.handle(&batch.records, &shutdown).await {
            // Shutting down with the batch unfinished: do not commit it; the next owner replays it.
            break;
        }
        metrics::histogram!("chat_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("chat_records_total").increment(batch.records.len() as u64);

        if let Err(e) = consumer.handled(&batch) {
            tracing::warn!(error = %e, "offset store failed; the records may be replayed");
        }
    }
    // Commit what was handled before leaving the group.
    if let Err(e) = consumer.commit_now() {
        tracing::debug!(error = %e, "final commit (nothing to commit is fine)");
    }
    tracing::info!("consumer stopped");
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
