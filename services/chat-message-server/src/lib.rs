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
//! - [`fanout`]: presence lookup and the pushes to gateways.

pub mod consumer;
pub mod fanout;
pub mod process;

use chat_common::config::{
    CassandraConfig, InternalConfig, KafkaConfig, ListenConfig, PostgresConfig, RedisConfig,
    TelemetryConfig,
};
use chat_common::telemetry::PrometheusHandle;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

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
    /// Time limit of one push to a gateway, milliseconds.
    pub push_timeout_ms: u64,
}

impl Default for MessageServerConfig {
    fn default() -> Self {
        MessageServerConfig {
            id: "message-server-1".into(),
            batch_max: 1000,
            push_timeout_ms: 2000,
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
    cfg: Config,
    metrics: PrometheusHandle,
    processor: process::Processor,
    ops_listener: tokio::net::TcpListener,
}

impl Application {
    pub async fn build(cfg: Config, metrics: PrometheusHandle) -> anyhow::Result<Self> {
        let db = chat_store::pg::connect(&cfg.postgres).await?;
        let store = chat_store::cql::MessageStore::connect(&cfg.cassandra).await?;
        let presence = chat_store::presence::Presence::connect(&cfg.redis).await?;
        let fanout = fanout::Fanout::new(
            presence,
            cfg.internal.token()?,
            std::time::Duration::from_millis(cfg.message_server.push_timeout_ms),
        )?;
        let processor = process::Processor::new(db, store, fanout);
        let ops_listener = tokio::net::TcpListener::bind(&cfg.ops.listen).await?;
        Ok(Application {
            cfg,
            metrics,
            processor,
            ops_listener,
        })
    }

    pub fn ops_addr(&self) -> std::net::SocketAddr {
        self.ops_listener.local_addr().expect("bound")
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let ready = self.processor.ready_check();
        let ops = chat_common::ops::router(self.metrics.clone(), ready);
        let ops_shutdown = shutdown.clone();
        let ops_task = tokio::spawn(async move {
            axum::serve(self.ops_listener, ops)
                .with_graceful_shutdown(ops_shutdown.cancelled_owned())
                .await
        });
        let result = consumer::run(&self.cfg, self.processor, shutdown.clone()).await;
        shutdown.cancel();
        let _ = ops_task.await;
        result
    }
}
