//! The REST API (`/api/v1/...`): accounts and sessions, channels, direct conversations and
//! history. Stateless; every request is served from PostgreSQL (accounts, channels), Cassandra
//! (history) and, for joins and leaves, a record on the Kafka topic so message servers apply the
//! change in order with the channel's messages.
//!
//! # Layout
//! - [`error`]: the API's error type and its JSON body.
//! - [`extract`]: JSON and authentication extractors with contract-shaped rejections.
//! - [`auth`]: register, login, refresh (rotating), logout; argon2id off the runtime.
//! - [`routes`]: users, channels, direct conversations, history.

pub mod auth;
pub mod error;
pub mod extract;
pub mod routes;

use chat_common::auth::TokenKeys;
use chat_common::config::{
    AuthConfig, CassandraConfig, KafkaConfig, ListenConfig, PostgresConfig, RedisConfig,
    TelemetryConfig,
};
use chat_common::telemetry::PrometheusHandle;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http: ListenConfig,
    pub ops: ListenConfig,
    pub postgres: PostgresConfig,
    /// Membership epochs (a leave invalidates the gateways' cached memberships).
    pub redis: RedisConfig,
    pub kafka: KafkaConfig,
    pub cassandra: CassandraConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: ListenConfig::new("127.0.0.1:8000"),
            ops: ListenConfig::new("127.0.0.1:9100"),
            postgres: PostgresConfig::default(),
            redis: RedisConfig::default(),
            kafka: KafkaConfig::default(),
            cassandra: CassandraConfig::default(),
            auth: AuthConfig::with_defaults(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

pub struct AppState {
    pub db: sqlx::PgPool,
    pub store: chat_store::cql::MessageStore,
    pub redis: chat_store::Redis,
    pub epochs: chat_store::epochs::MemberEpochs,
    pub producer: chat_store::bus::Producer,
    pub keys: TokenKeys,
    pub refresh_ttl_secs: u64,
    /// Bounds concurrent argon2 work (memory-hard: 19 MiB each) to the number of cores.
    pub hashing: tokio::sync::Semaphore,
}

pub type SharedState = Arc<AppState>;

pub struct Application {
    state: SharedState,
    metrics: PrometheusHandle,
    http_listener: tokio::net::TcpListener,
    ops_listener: tokio::net::TcpListener,
}

impl Application {
    pub async fn build(cfg: Config, metrics: PrometheusHandle) -> anyhow::Result<Self> {
        let keys = TokenKeys::new(&cfg.auth.secret()?, cfg.auth.access_ttl_secs);
        let db = chat_store::pg::connect(&cfg.postgres).await?;
        let store = chat_store::cql::MessageStore::connect(&cfg.cassandra).await?;
        let redis = chat_store::Redis::connect(&cfg.redis).await?;
        let producer = chat_store::bus::Producer::new(&cfg.kafka)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let state = Arc::new(AppState {
            db,
            store,
            epochs: chat_store::epochs::MemberEpochs::new(redis.clone()),
            redis,
            producer,
            keys,
            refresh_ttl_secs: cfg.auth.refresh_ttl_secs,
            hashing: tokio::sync::Semaphore::new(cores),
        });
        Ok(Application {
            state,
            metrics,
            http_listener: tokio::net::TcpListener::bind(&cfg.http.listen).await?,
            ops_listener: tokio::net::TcpListener::bind(&cfg.ops.listen).await?,
        })
    }

    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.http_listener.local_addr().expect("bound")
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let ready = chat_common::ops::ready_check(self.state.clone(), |s| async move {
            chat_store::pg::ping(&s.db).await?;
            s.redis.ping().await.map_err(|e| format!("redis: {e}"))?;
            // History needs Cassandra: not ready while the driver's pool is reconnecting.
            s.store.ping().await
        });
        let ops = chat_common::ops::router(self.metrics.clone(), ready);
        let app = routes::router(self.state.clone());
        let ops_stop = shutdown.clone();
        let ops_task = tokio::spawn(async move {
            axum::serve(self.ops_listener, ops)
                .with_graceful_shutdown(ops_stop.cancelled_owned())
                .await
        });
        tracing::info!(addr = %self.http_listener.local_addr()?, "api listening");
        axum::serve(self.http_listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        let _ = ops_task.await;
        Ok(())
    }
}
