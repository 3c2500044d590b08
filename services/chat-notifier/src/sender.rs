//! Sending deliveries beside the Kafka loop: each request is its own task, at most
//! `max_in_flight` at once (HTTP/2 multiplexes them on one connection) and at most
//! `max_in_flight_per_device` to one device (the others wait for that device's turn, in order,
//! without holding a shared permit), so one slow or failing device delays nobody. Outcomes go back into the outbox in batches (one statement per batch);
//! retries wait in the outbox (`pending` with a due time), not in memory, and the recovery loop
//! picks them up, with whatever a crashed notifier left leased.
//!
//! A delivery is held by the notifier that leased it until `lease`; a task that could not start
//! its request early enough to finish within the lease leaves it alone (the lease runs out and
//! the recovery loop claims it), so two notifiers never send one delivery at the same time
//! unless one of them died with the request on the wire.

use crate::apns::{Answer, Apns};
use crate::decide::expired;
use chat_store::pg::PgPool;
use chat_store::push_outbox::{self, Delivery, Finish, Outcome};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct Limits {
    pub max_in_flight: usize,
    pub max_in_flight_per_device: usize,
    pub max_attempts: i32,
    pub lease: Duration,
}

pub struct Sender {
    apns: Arc<Apns>,
    db: PgPool,
    permits: Arc<Semaphore>,
    devices: Arc<Devices>,
    limits: Limits,
    outcomes: mpsc::UnboundedSender<Outcome>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// Outcomes written per statement at most.
const OUTCOMES_PER_WRITE: usize = 500;
/// Deliveries claimed by the recovery loop per round at most.
const CLAIM_BATCH: i64 = 500;
/// A request must be able to finish this long before its lease ends.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

impl Sender {
    pub fn new(
        apns: Apns,
        db: PgPool,
        limits: Limits,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn(write_outcomes(db.clone(), rx));
        Sender {
            apns: Arc::new(apns),
            db,
            permits: Arc::new(Semaphore::new(limits.max_in_flight)),
            devices: Arc::new(Devices {
                per_device: limits.max_in_flight_per_device,
                waiting: Mutex::new(HashMap::new()),
            }),
            limits,
            outcomes: tx,
            tasks,
            shutdown,
        }
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// How long a delivery is held by the notifier that leased it.
    pub fn lease(&self) -> Duration {
        self.limits.lease
    }

    /// Send `deliveries`, leased to this notifier from `leased_at` for the lease time.
    pub fn dispatch(&self, deliveries: Vec<Delivery>, leased_at: Instant) {
        if !self.apns.enabled() {
            // Recorded, never sent: finished at once so the outbox does not fill.
            for d in deliveries {
                let _ = self.outcomes.send(Outcome {
                    token: d.token,
                    message_id: d.message_id,
                    status: None,
                    reason: Some("apns.enabled is false".into()),
                    finish: Finish::Failed,
                });
            }
            return;
        }
        let deadline = leased_at + self.limits.lease;
        for d in deliveries {
            let apns = self.apns.clone();
            let permits = self.permits.clone();
            let devices = self.devices.clone();
            let outcomes = self.outcomes.clone();
            let db = self.db.clone();
            let max_attempts = self.limits.max_attempts;
            let shutdown = self.shutdown.clone();
            let bound = self.apns.request_timeout() + LEASE_MARGIN;
            self.tasks.spawn(async move {
                // Shutting down: what has not started stays leased and is sent by the next
                // notifier when the lease runs out. The device's turn first, so a device's
                // backlog waits without holding the shared permits.
                let turn = devices.turn(&d.token);
                let _device_permit = tokio::select! {
                    p = turn.semaphore.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                    _ = shutdown.cancelled() => return,
                };
                let _permit = tokio::select! {
                    p = permits.acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                    _ = shutdown.cancelled() => return,
                };
                if Instant::now() + bound > deadline {
                    // Too late to finish within the lease: the recovery loop takes it.
                    metrics::counter!("chat_notifier_lease_missed_total").increment(1);
                    return;
                }
                metrics::gauge!("chat_notifier_in_flight").increment(1.0);
                let answer = apns.send(&d).await;
                metrics::gauge!("chat_notifier_in_flight").decrement(1.0);
                // From the message's creation (the gateway's ack) to the answer.
                let lag = (Utc::now() - (d.expires_at - crate::decide::APNS_EXPIRY))
                    .to_std()
                    .unwrap_or_default();
                metrics::histogram!("chat_notifier_lag_seconds").record(lag.as_secs_f64());
                let outcome = judge(&db, &d, answer, max_attempts).await;
                let _ = outcomes.send(outcome);
            });
        }
    }
}

/// One semaphore per device token with deliveries being sent or waiting to be, each with
/// `per_device` permits; a device's entry goes when its last delivery is done.
struct Devices {
    per_device: usize,
    waiting: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Devices {
    fn turn(self: &Arc<Self>, token: &str) -> Turn {
        let semaphore = self
            .waiting
            .lock()
            .expect("devices lock")
            .entry(token.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_device)))
            .clone();
        Turn {
            devices: self.clone(),
            token: token.to_owned(),
            semaphore,
        }
    }
}

/// A delivery's hold on its device's semaphore; dropping the last one removes the entry.
struct Turn {
    devices: Arc<Devices>,
    token: String,
    semaphore: Arc<Semaphore>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut waiting = self.devices.waiting.lock().expect("devices lock");
        // The map's reference and this one: no other delivery of the device holds it.
        if Arc::strong_count(&self.semaphore) == 2 {
            waiting.remove(&self.token);
        }
    }
}

/// What an answer means for the delivery, as Apple documents it. Dead tokens are forgotten here.
async fn judge(db: &PgPool, d: &Delivery, answer: Answer, max_attempts: i32) -> Outcome {
    let outcome = |status: Option<u16>, reason: Option<String>, finish| Outcome {
        token: d.token.clone(),
        message_id: d.message_id,
        status: status.map(i32::from),
        reason,
        finish,
    };
    let (status, reason, timestamp_ms) = match answer {
        Answer::Accepted => return outcome(Some(200), None, Finish::Sent),
        Answer::Refused {
            status,
            reason,
            timestamp_ms,
        } => (Some(status), reason, timestamp_ms),
        Answer::NoAnswer(e) => {
            tracing::debug!(error = %e, "no answer from APNs");
            (None, e, None)
        }
    };
    let retry_from = match (status, reason.as_str()) {
        // The token is no longer valid for the topic: stop using it. A 410's timestamp says
        // since when; a device registered again after that keeps its (new) registration.
        (Some(410), _) | (Some(400), "BadDeviceToken" | "DeviceTokenNotForTopic") => {
            let since = timestamp_ms.and_then(chrono::DateTime::from_timestamp_millis);
            match push_outbox::forget_dead_token(db, &d.token, since).await {
                Ok(true) => {
                    metrics::counter!("chat_devices_deleted_total", "reason" => reason.clone())
                        .increment(1);
                    tracing::info!(reason = %reason, "APNs refused a device token: device forgotten");
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not forget a dead device token"),
            }
            return outcome(status, Some(reason), Finish::Dropped);
        }
        // Too many requests for this device: retry later, as Apple allows.
        (Some(429), _) => Duration::from_secs(2),
        // APNs or the way to it is in trouble.
        (Some(500..=599) | None, _) => Duration::from_secs(1),
        // Our credentials or topic are wrong: nothing about the device. Retried slowly (an
        // operator may fix the key), never deleting devices; loud in the logs.
        (Some(403), _) | (Some(400), "BadTopic" | "TopicDisallowed") => {
            metrics::counter!("chat_apns_config_errors_total").increment(1);
            tracing::error!(status = ?status, reason = %reason, "APNs refused our credentials or topic: check apns.key_file, key_id, team_id and the bundle id");
            Duration::from_secs(30)
        }
        // Anything else is a request APNs will never take (a bug in ours): give up.
        _ => {
            tracing::error!(status = ?status, reason = %reason, "APNs refused a notification");
            return outcome(status, Some(reason), Finish::Failed);
        }
    };
    if d.attempts >= max_attempts || expired(d.expires_at) {
        return outcome(status, Some(reason), Finish::Failed);
    }
    let delay = chat_common::retry::backoff(retry_from, Duration::from_secs(60), None)
        .nth(d.attempts.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_secs(60));
    let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
    outcome(status, Some(reason), Finish::Retry { at })
}

/// Write outcomes as they come, many per statement, until every sender is gone (the Kafka
/// loop, the recovery loop and the requests in flight have ended: the drain waits for it).
async fn write_outcomes(db: PgPool, mut rx: mpsc::UnboundedReceiver<Outcome>) {
    let mut buf = Vec::with_capacity(OUTCOMES_PER_WRITE);
    loop {
        buf.clear();
        if rx.recv_many(&mut buf, OUTCOMES_PER_WRITE).await == 0 {
            break;
        }
        let mut delays = chat_common::retry::backoff(
            Duration::from_millis(50),
            Duration::from_secs(2),
            Some(20),
        );
        loop {
            match push_outbox::finish(&db, &buf).await {
                Ok(()) => {
                    for o in &buf {
                        let state = match o.finish {
                            Finish::Sent => "sent",
                            Finish::Retry { .. } => "retry",
                            Finish::Dropped => "dropped",
                            Finish::Failed => "failed",
                        };
                        metrics::counter!("chat_notifier_outcomes_total", "outcome" => state)
                            .increment(1);
                    }
                    break;
                }
                Err(e) => match delays.next() {
                    Some(d) => {
                        tracing::warn!(error = %e, "could not record outcomes; retrying");
                        tokio::time::sleep(d).await;
                    }
                    None => {
                        // The rows stay leased; when the lease runs out they are sent again
                        // (counted as lost answers). Better twice than never.
                        tracing::error!(error = %e, n = buf.len(), "gave up recording outcomes");
                        break;
                    }
                },
            }
        }
    }
}

/// Every `interval` (and at once at start): claim deliveries that are due (retries, and what a
/// crashed notifier left leased) and send them; now and then prune old rows and report the
/// outbox's size.
pub async fn recovery_loop(
    sender: Arc<Sender>,
    interval: Duration,
    keep: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        rounds += 1;
        loop {
            let leased_at = Instant::now();
            match push_outbox::claim_due(&sender.db, CLAIM_BATCH, sender.limits.lease).await {
                Ok(rows) => {
                    let full = rows.len() as i64 == CLAIM_BATCH;
                    if !rows.is_empty() {
                        metrics::counter!("chat_notifier_recovered_total")
                            .increment(rows.len() as u64);
                        sender.dispatch(rows, leased_at);
                    }
                    if !full || shutdown.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim due deliveries");
                    break;
                }
            }
        }
        if rounds % 60 == 1 {
            match push_outbox::unfinished(&sender.db).await {
                Ok(n) => metrics::gauge!("chat_notifier_outbox_pending").set(n as f64),
                Err(e) => tracing::debug!(error = %e, "outbox size"),
            }
        }
        if rounds % 600 == 1 {
            match push_outbox::prune(&sender.db, keep, 10_000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(n, "pruned old deliveries"),
                Err(e) => tracing::warn!(error = %e, "could not prune old deliveries"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(per_device: usize) -> Arc<Devices> {
        Arc::new(Devices {
            per_device,
            waiting: Mutex::new(HashMap::new()),
        })
    }

    #[tokio::test]
    async fn a_device_gets_its_permits_in_turn_and_its_entry_goes_with_its_last_delivery() {
        let d = devices(2);
        let turns: Vec<Turn> = (0..3).map(|_| d.turn("slow")).collect();
        let other = d.turn("other");
        let held: Vec<_> = turns[..2]
            .iter()
            .map(|t| t.semaphore.clone().try_acquire_owned().expect("a permit"))
            .collect();
        assert!(
            turns[2].semaphore.clone().try_acquire_owned().is_err(),
            "a third request to one device waits"
        );
        let free = other.semaphore.clone().try_acquire_owned();
        assert!(free.is_ok(), "another device is not held up");
        drop((held, free, other));
        assert_eq!(
            d.waiting.lock().unwrap().len(),
            1,
            "the other device's entry went"
        );
        drop(turns);
        assert!(d.waiting.lock().unwrap().is_empty());
    }
}
