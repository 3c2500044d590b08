//! The Kafka loop. Offsets are stored only after a batch is fully handled (stored and
//! published) and committed at most every [`COMMIT_EVERY`](chat_store::bus::consumer::COMMIT_EVERY), so a
//! crash replays at most the batch in hand plus that much, and replays are recognised by
//! [`crate::process`]. Any rebalance drops the per-channel caches: another server may have moved
//! a channel on while this one did not own it.

use crate::process::{Processor, Publisher, Stored};
use chat_store::bus::{Batch, GroupConsumer, KafkaError};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How batches are made: at most `max` records, and waiting up to `linger` for more while the
/// server is busy (see [`Pace`]).
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    pub max: usize,
    pub linger: Duration,
}

/// How long rates are counted over before they count, and the pause (the consumer waiting
/// that long for a record) after which traffic counts as stopped.
const RATE_WINDOW: Duration = Duration::from_millis(100);

/// The rate records arrive at, and from it whether a new batch waits for more. Each batch costs
/// a Cassandra batch, a PostgreSQL statement and a push per gateway whatever its size, so under
/// load fewer, fuller batches are cheaper. Waiting pays only when more records are expected
/// within the wait: a batch lingers while the last counted rate brings at least one record per
/// `linger`. Idle or light traffic (the latency goals at 50 msg/s) never waits, nor does the
/// first batch after a pause, however busy the time before it was. A pause is the consumer
/// idle, waiting for a record, not the time between batches: a saturated server takes longer
/// than [`RATE_WINDOW`] to store a batch while records keep coming, and must go on counting
/// them (measuring the gap between batches took every batch then for the first after a pause).
struct Pace {
    linger: Duration,
    window_start: tokio::time::Instant,
    window_records: usize,
    per_s: f64,
    /// When the batch being gathered began to wait for its first record. Kept across a wait
    /// that was cancelled (the consume loop's `select!`), so an idle spell counts whole.
    waiting_since: Option<tokio::time::Instant>,
}

impl Pace {
    fn new(linger: Duration) -> Self {
        let now = tokio::time::Instant::now();
        Pace {
            linger,
            window_start: now,
            window_records: 0,
            per_s: 0.0,
            waiting_since: None,
        }
    }

    /// The consumer starts waiting for the next batch's first record (a wait already under way
    /// keeps its start).
    fn wait_starts(&mut self, now: tokio::time::Instant) {
        self.waiting_since.get_or_insert(now);
    }

    /// A batch's first records arrived `now`: until when it waits for more, if it does. Closes
    /// the counting window if it is old enough; after a pause the count starts again from zero.
    fn linger_until(&mut self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        let idle = self
            .waiting_since
            .take()
            .map_or(Duration::ZERO, |since| now.duration_since(since));
        let paused = idle >= RATE_WINDOW;
        let counted = now.duration_since(self.window_start);
        if paused || counted >= RATE_WINDOW {
            self.per_s = if paused {
                0.0
            } else {
                self.window_records as f64 / counted.as_secs_f64()
            };
            self.window_start = now;
            self.window_records = 0;
        }
        (!self.linger.is_zero() && self.per_s * self.linger.as_secs_f64() >= 1.0)
            .then(|| now + self.linger)
    }

    fn count(&mut self, records: usize) {
        self.window_records += records;
    }
}

/// The next batch: the records already fetched ([`GroupConsumer::next_batch`]), then, if the
/// pace says so, those that arrive within the linger. Cancel-safe: cancelled while lingering,
/// the records taken stay in `batch` and `lingering` keeps the deadline, so the next call
/// goes on filling the same batch instead of starting a new one.
async fn gather(
    consumer: &GroupConsumer,
    pace: &mut Pace,
    lingering: &mut Option<tokio::time::Instant>,
    max: usize,
    batch: &mut Batch,
) -> Result<(), KafkaError> {
    if lingering.is_none() {
        pace.wait_starts(tokio::time::Instant::now());
        consumer.next_batch(max, batch).await?;
        *lingering = pace.linger_until(tokio::time::Instant::now());
        if lingering.is_some() {
            metrics::counter!("chat_batches_lingered_total").increment(1);
        }
    }
    if let Some(until) = *lingering {
        let filled = consumer.fill_batch(max, until, batch).await;
        *lingering = None;
        filled?;
    }
    pace.count(batch.records.len());
    Ok(())
}

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
    batching: Batching,
    shutdown: CancellationToken,
) {
    let publisher = processor.publisher();
    let mut seen_generation = consumer.generation();
    let mut batch = Batch::default();
    let mut publishing: Option<Publishing> = None;
    let mut pace = Pace::new(batching.linger);
    let mut lingering = None;
    loop {
        tokio::select! {
            r = gather(&consumer, &mut pace, &mut lingering, batching.max, &mut batch) => {
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
            // Nothing new arrived (or the batch is still lingering) while a batch was being
            // published: finish it.
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    const MS: Duration = Duration::from_millis(1);

    /// Batches of `per_batch` records every `every`, for `span`, from `start`; the linger
    /// decision of the batch after them.
    fn after_traffic(
        pace: &mut Pace,
        start: Instant,
        every: Duration,
        per_batch: usize,
        span: Duration,
    ) -> (Instant, Option<Instant>) {
        let mut now = start;
        while now < start + span {
            pace.linger_until(now);
            pace.count(per_batch);
            now += every;
        }
        (now, pace.linger_until(now))
    }

    #[test]
    fn batches_linger_only_while_records_come_faster_than_one_per_linger() {
        let start = Instant::now();
        // 800 records/s, a 2 ms linger: 1.6 more records expected within it.
        let mut busy = Pace::new(2 * MS);
        let (now, until) = after_traffic(&mut busy, start, MS, 0, 250 * MS);
        assert_eq!(until, None, "no records, no wait");
        let (now, until) = after_traffic(&mut busy, now, 5 * MS, 4, 250 * MS);
        assert_eq!(until, Some(now + 2 * MS), "800 records/s wait 2 ms");

        // 200 records/s (the 400 msg/s step's share of one server): none expected in 2 ms.
        let mut light = Pace::new(2 * MS);
        let (_, until) = after_traffic(&mut light, start, 5 * MS, 1, 250 * MS);
        assert_eq!(until, None, "200 records/s go at once");

        // Linger 0: never, however busy.
        let mut off = Pace::new(Duration::ZERO);
        let (_, until) = after_traffic(&mut off, start, MS, 10, 250 * MS);
        assert_eq!(until, None);
    }

    #[test]
    fn the_first_batches_after_a_pause_go_at_once_however_busy_it_was_before() {
        let start = Instant::now();
        let mut pace = Pace::new(2 * MS);
        let (now, until) = after_traffic(&mut pace, start, MS, 2, 250 * MS);
        assert!(until.is_some(), "busy");
        // A burst of 1,000 records (a backlog taken over, say), then 1.5 s of nothing: ~700
        // records a second over the whole window, but none are coming now.
        pace.count(1000);
        pace.wait_starts(now);
        let later = now + Duration::from_millis(1500);
        assert_eq!(pace.linger_until(later), None, "the batch after the pause");
        pace.count(1);
        pace.wait_starts(later);
        assert_eq!(
            pace.linger_until(later + 250 * MS),
            None,
            "light traffic after it"
        );
        // Traffic resumes: waiting again once a window has counted it.
        let (_, until) = after_traffic(&mut pace, later + 300 * MS, MS, 2, 250 * MS);
        assert!(until.is_some(), "busy again");
    }

    /// Saturated: each batch takes 150 ms to store (longer than the counting window) and the
    /// next one's records are already waiting when it is done. That is not a pause: the
    /// batches wait for more (the delivery test of this saw 13 batches of ~185 records, none
    /// waiting, when the gap between batches was taken for idleness).
    #[test]
    fn batches_stored_slower_than_the_window_still_wait_while_records_keep_coming() {
        let start = Instant::now();
        let mut pace = Pace::new(2 * MS);
        pace.wait_starts(start);
        let first = start + Duration::from_secs(1);
        assert_eq!(
            pace.linger_until(first),
            None,
            "the first batch after idling"
        );
        pace.count(185);
        let (_, until) = after_traffic(&mut pace, first + 150 * MS, 150 * MS, 185, 600 * MS);
        assert!(until.is_some(), "~1,200 records a second, never idle");
    }
}
