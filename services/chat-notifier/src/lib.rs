//! The notifier: push notifications for people who are not looking.
//!
//! It reads the `messages` topic as a consumer group of its own (`notifier.consumer_group`), so
//! it neither slows nor changes the message servers. For each batch it decides who is notified
//! (members with a device, not the sender, whose level lets the message through and who have no
//! connection in the foreground), writes one outbox row per (device, message) into PostgreSQL,
//! and only then moves its Kafka offsets. The rows are sent to APNs beside the Kafka loop, so a
//! slow device never holds up a batch; a crash leaves unsent rows to the recovery loop of
//! whichever notifier runs next. Nobody is skipped, and a replayed record notifies nobody twice.
//!
//! # Layout
//! - [`consumer`]: the Kafka loop: decide, write the outbox, commit, hand rows to the sender.
//! - [`decide`]: who is notified, with what badge and text (the payload).
//! - [`apns`]: the APNs provider API client: HTTP/2, the ES256 provider token, answers.
//! - [`sender`]: requests in flight, outcomes back into the outbox, retries, the recovery loop.

pub mod apns;
pub mod consumer;
pub mod decide;
pub mod sender;

use chat_common::config::{
    KafkaConfig, ListenConfig, PostgresConfig, RedisConfig, TelemetryConfig,
};
use chat_common::telemetry::PrometheusHandle;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The ops port (`/healthz`, `/readyz`, `/metrics`).
    pub ops: ListenConfig,
    pub notifier: NotifierConfig,
    pub apns: apns::ApnsConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub kafka: KafkaConfig,
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ops: ListenConfig::new("127.0.0.1:9301"),
            notifier: NotifierConfig::default(),
            apns: apns::ApnsConfig::default(),
            postgres: PostgresConfig::default(),
            redis: RedisConfig::default(),
            kafka: KafkaConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifierConfig {
    /// Name in logs and metrics, and the Kafka client id.
    pub id: String,
    /// The notifiers' own consumer group of the `messages` topic.
    pub consumer_group: String,
    /// Most records decided in one batch.
    pub batch_max: usize,
    /// How long a batch waits for more records after its first one. Deciding costs a few
    /// PostgreSQL statements per batch whatever its size, and a notification may come a few
    /// milliseconds later; 0: only what has already arrived (as the message servers do).
    pub linger_ms: u64,
    /// Kafka answers the notifier's fetches once this many bytes of records are there, or
    /// after `fetch_wait_ms` with what there is. Each fetch answered costs the broker about
    /// as much as a produce; at 800 msg/s the notifier's prompt fetches were a third of
    /// Kafka's (docs/benchmarks.md, issue 14). 1: each record at once.
    pub fetch_min_bytes: u32,
    /// The longest a fetch waits at the broker for `fetch_min_bytes` (so the most a
    /// notification leaves later for it, besides `linger_ms`).
    pub fetch_wait_ms: u32,
    /// Concurrent APNs requests of this notifier.
    pub max_in_flight: usize,
    /// Concurrent APNs requests to one device (of `max_in_flight`): a device that answers
    /// slowly, or a flood of notifications to one device, never holds more.
    pub max_in_flight_per_device: usize,
    /// Messages older than this when consumed are not notified (catching up after an outage
    /// must not wake people for old news).
    pub max_age_secs: u64,
    /// Attempts per delivery before it is given up.
    pub max_attempts: i32,
    /// How long a notifier holds a delivery it is sending; after that (a crash) another claim
    /// takes it over. Must exceed `apns.request_timeout_ms` by a good margin.
    pub lease_secs: u64,
    /// How often the outbox is searched for deliveries due again (retries, a crashed
    /// notifier's leftovers).
    pub recovery_interval_ms: u64,
    /// Finished deliveries are kept this long (longer than a resend can come back).
    pub keep_days: u64,
    /// Bounded drain on shutdown: the batch in hand, requests in flight, the final commit.
    pub drain_secs: u64,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            id: "notifier-1".into(),
            consumer_group: "chat-notifier".into(),
            batch_max: 1000,
            linger_ms: 20,
            fetch_min_bytes: 32 * 1024,
            fetch_wait_ms: 50,
            max_in_flight: 256,
            max_in_flight_per_device: 4,
            max_age_secs: 600,
            max_attempts: 6,
            lease_secs: 30,
            recovery_interval_ms: 1000,
            keep_days: 7,
            drain_secs: 10,
        }
    }
}

pub struct Application {
    cfg: NotifierConfig,
    metrics: PrometheusHandle,
    consumer: chat_store::bus::GroupConsumer,
    decider: decide::Decider,
    sender: sender::Sender,
    db: chat_store::pg::PgPool,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    ops_listener: tokio::net::TcpListener,
}

impl Application {
    /// Connect to the stores, set up the APNs client, join the consumer group and bind the
    /// ops listener.
    pub async fn build(
        cfg: Config,
        metrics: PrometheusHandle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let n = cfg.notifier;
        if n.lease_secs * 1000 <= cfg.apns.request_timeout_ms * 2 {
            anyhow::bail!(
                "notifier.lease_secs must be more than twice apns.request_timeout_ms (a request on the wire must end before another notifier may take its delivery over)"
            );
        }
        if n.max_in_flight_per_device == 0 || n.max_in_flight_per_device > n.max_in_flight {
            anyhow::bail!(
                "notifier.max_in_flight_per_device must be 1 to notifier.max_in_flight ({})",
                n.max_in_flight
            );
        }
        // Key lookups only; the candidate query was planned for every batch.
        let db = chat_store::pg::connect(&cfg.postgres, chat_store::pg::Planning::Generic).await?;
        let redis = chat_store::Redis::connect(&cfg.redis).await?;
        let apns = apns::Apns::new(&cfg.apns)?;
        let tasks = TaskTracker::new();
        let sender = sender::Sender::new(
            apns,
            db.clone(),
            sender::Limits {
                max_in_flight: n.max_in_flight,
                max_in_flight_per_device: n.max_in_flight_per_device,
                max_attempts: n.max_attempts,
                lease: Duration::from_secs(n.lease_secs),
            },
            tasks.clone(),
            shutdown.clone(),
        );
        let decider = decide::Decider::new(
            db.clone(),
            chat_store::presence::Presence::new(redis),
            Duration::from_secs(n.max_age_secs),
        );
        // Records gather at the broker (up to `fetch_min_bytes` or `fetch_wait_ms`): a
        // notification may leave that much later, and Kafka answers far fewer fetches.
        let consumer = chat_store::bus::GroupConsumer::subscribe(
            &cfg.kafka,
            &n.consumer_group,
            &n.id,
            chat_store::bus::FetchPolicy {
                min_bytes: n.fetch_min_bytes,
                max_wait_ms: n.fetch_wait_ms,
            },
        )?;
        tracing::info!(topic = %cfg.kafka.topic, group = %n.consumer_group, apns = cfg.apns.enabled, "consuming");
        let ops_listener = tokio::net::TcpListener::bind(&cfg.ops.listen).await?;
        Ok(Application {
            cfg: n,
            metrics,
            consumer,
            decider,
            sender,
            db,
            tasks,
            shutdown,
            ops_listener,
        })
    }

    /// Consume and send until `shutdown`, then drain within `notifier.drain_secs`.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown;
        // Ready once the group has given this notifier partitions: before that, a message sent
        // now would be notified only after the join (not lost: the group starts where it left
        // off), which tests and rolling restarts should not have to guess.
        let assigned = self.consumer.assigned_partitions();
        let ready = chat_common::ops::ready_check(
            (self.db.clone(), self.decider.clone(), assigned),
            |(db, decider, assigned)| async move {
                chat_store::pg::ping(&db).await?;
                decider.ping().await?;
                if assigned.load(Ordering::SeqCst) == 0 {
                    return Err("no partitions of the topic assigned yet".into());
                }
                Ok(())
            },
        );
        let ops = chat_common::ops::router(self.metrics.clone(), ready);
        self.tasks.spawn(chat_common::ops::serve(
            "ops",
            self.ops_listener,
            ops,
            shutdown.clone(),
        ));
        let sender = Arc::new(self.sender);
        self.tasks.spawn(sender::recovery_loop(
            sender.clone(),
            Duration::from_millis(self.cfg.recovery_interval_ms),
            Duration::from_secs(self.cfg.keep_days * 24 * 3600),
            shutdown.clone(),
        ));
        self.tasks.spawn(consumer::run(
            self.consumer,
            self.decider,
            sender,
            consumer::Batching {
                max: self.cfg.batch_max,
                linger: Duration::from_millis(self.cfg.linger_ms),
            },
            shutdown.clone(),
        ));
        shutdown.cancelled().await;
        chat_common::shutdown::drain(&self.tasks, Duration::from_secs(self.cfg.drain_secs)).await;
        Ok(())
    }
}
