//! The message server: one member of the Kafka consumer group of the `messages` topic.
//!
//! For each batch of records it (1) gives each new message the next position (`seq`) of its
//! channel, recognising records it already stored (redelivery after a crash, client resends),
//! (2) stores the messages in Cassandra/ScyllaDB, (3) pushes them to the gateways of the
//! channel's connected members, one request per gateway, and only then (4) commits the offsets.
//! Storing before pushing is what makes resume exact: anything a client was not pushed is
//! already in history when it asks.
//!
//! # Layout
//! - [`consumer`]: the Kafka loop, rebalances and commits.
//! - [`process`]: positions, storage and the membership cache.
//! - [`activity`]: the channels' last activity (the directory's order), noted per batch and
//!   written for all channels at once every 200 ms.

pub mod activity;
pub mod apply;
pub mod consumer;
pub mod process;

use chat_common::config::{
    CassandraConfig, InternalConfig, KafkaConfig, ListenConfig, PostgresConfig, RedisConfig,
    TelemetryConfig,
};
use chat_common::telemetry::PrometheusHandle;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub ops: ListenConfig,
    pub message_server: MessageServerConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub kafka: KafkaConfig,
    pub cassandra: CassandraConfig,
    pub internal: InternalConfig,
    pub telemetry: TelemetryConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageServerConfig {
    /// Name in logs and metrics.
    pub id: String,
    /// Most records handled in one batch.
    pub batch_max: usize,
    /// How long a batch waits for more records after its first, and only while records arrive
    /// faster than one per this time (each batch costs its statements and pushes whatever its
    /// size; at lower rates a batch goes with what has arrived and waits for nothing). 0: never.
    /// 2 ms: at 1,600 msg/s in groups the machine went from 90-94 % to 75-81 % busy (p99
    /// 35-65 → 24-59 ms); 5 ms saved no more CPU and had a worse tail (docs/benchmarks.md
    /// tuning log 25).
    pub linger_ms: u64,
    /// Time limit of one push to a gateway, milliseconds.
    pub push_timeout_ms: u64,
    /// Channels whose position and member list stay cached between batches (least recently
    /// used beyond that are read again when needed).
    pub channels_cached: usize,
    /// Bounded drain on shutdown: the batch in hand, the final commit, push retries.
    pub drain_secs: u64,
}

impl Default for MessageServerConfig {
    fn default() -> Self {
        MessageServerConfig {
            id: "message-server-1".into(),
            batch_max: 1000,
            linger_ms: 2,
            push_timeout_ms: 2000,
            channels_cached: 100_000,
            drain_secs: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ops: ListenConfig::new("127.0.0.1:9201"),
            message_server: MessageServerConfig::default(),
            postgres: PostgresConfig::default(),
            redis: RedisConfig::default(),
            kafka: KafkaConfig::default(),
            cassandra: CassandraConfig::default(),
            internal: InternalConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

pub struct Application {
    cfg: MessageServerConfig,
    metrics: PrometheusHandle,
    consumer: chat_store::bus::GroupConsumer,
    processor: process::Processor,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    ops_listener: tokio::net::TcpListener,
}

impl Application {
    /// Connect to the stores, join the consumer group and bind the ops listener. `shutdown` is
    /// the one token everything the server runs races.
    pub async fn build(
        cfg: Config,
        metrics: PrometheusHandle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        // Its per-batch statements keep generic plans under `auto`; the two it plans each time
        // (the activity update, the member lists of channels not cached) run a few times a
        // second, and their custom plans use the arrays' real lengths (pg_stat_statements).
        let db = chat_store::pg::connect(&cfg.postgres, chat_store::pg::Planning::Auto).await?;
        let store = chat_store::cql::MessageStore::connect(&cfg.cassandra, db.clone()).await?;
        let redis = chat_store::Redis::connect(&cfg.redis).await?;
        let tasks = TaskTracker::new();
        let ms = cfg.message_server;
        let fanout = chat_store::push::Fanout::new(
            chat_store::presence::Presence::new(redis),
            cfg.internal.token()?,
            Duration::from_millis(ms.push_timeout_ms),
            tasks.clone(),
        )?;
        let activity = activity::Activity::default();
        tasks.spawn(activity.clone().run(db.clone(), shutdown.clone()));
        let logged_since = chat_store::read_state::logged_since(&db).await?;
        let processor = process::Processor::new(
            db,
            store,
            fanout,
            activity,
            logged_since,
            ms.channels_cached,
            ms.batch_max,
        );
        let consumer = chat_store::bus::GroupConsumer::subscribe(
            &cfg.kafka,
            &cfg.kafka.consumer_group,
            &ms.id,
            chat_store::bus::FetchPolicy::PROMPT,
        )?;
        tracing::info!(topic = %cfg.kafka.topic, group = %cfg.kafka.consumer_group, "consuming");
        let ops_listener = tokio::net::TcpListener::bind(&cfg.ops.listen).await?;
        Ok(Application {
            cfg: ms,
            metrics,
            consumer,
            processor,
            tasks,
            shutdown,
            ops_listener,
        })
    }

    /// Consume until `shutdown`, then drain: the batch in hand is finished and committed, push
    /// retries get the rest of the bound.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown;
        let ready = self.processor.ready_check();
        let ops = chat_common::ops::router(self.metrics.clone(), ready);
        self.tasks.spawn(chat_common::ops::serve(
            "ops",
            self.ops_listener,
            ops,
            shutdown.clone(),
        ));
        self.tasks.spawn(consumer::run(
            self.consumer,
            self.processor,
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
