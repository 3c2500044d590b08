//! The REST API (`/api/v1/...`): accounts and sessions, channels, direct conversations and
//! history. Stateless; every request is served from PostgreSQL (accounts, channels), Cassandra
//! (history) and, for joins and leaves, a record on the Kafka topic so message servers apply the
//! change in order with the channel's messages.
//!
//! # Layout
//! - [`error`]: the API's error type and its JSON body.
//! - [`doc`]: the statuses every operation of the OpenAPI document can answer.
//! - [`extract`]: JSON and authentication extractors with contract-shaped rejections.
//! - [`auth`]: register, login, refresh (rotating), logout (revoking the session), WebSocket
//!   tickets.
//! - [`hashing`]: argon2id on a fixed pool of threads, each reusing its memory.
//! - [`throttle`]: login and registration limits per client address and per account.
//! - [`directory`]: the channel directory (paged by member count or activity).
//! - [`attachments`]: attachment uploads (presigned PUTs), their check, download links.
//! - [`dimensions`]: an image's width and height from its header (pure; no IO).
//! - [`notifications`]: push notification devices, channel notification levels, preferences.
//! - [`routes`]: users, channels, direct conversations, history; the router and its layers.

pub mod attachments;
pub mod auth;
pub mod dimensions;
pub mod directory;
pub mod doc;
pub mod error;
pub mod extract;
pub mod hashing;
pub mod notifications;
pub mod routes;
pub mod throttle;

use chat_common::auth::TokenKeys;
use chat_common::config::{
    AuthConfig, CassandraConfig, KafkaConfig, ListenConfig, ObjectsConfig, PostgresConfig,
    RedisConfig, TelemetryConfig,
};
use chat_common::telemetry::PrometheusHandle;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http: ListenConfig,
    pub ops: ListenConfig,
    pub postgres: PostgresConfig,
    /// Membership epochs (a leave invalidates the gateways' cached memberships), revoked
    /// sessions, WebSocket tickets.
    pub redis: RedisConfig,
    pub kafka: KafkaConfig,
    pub cassandra: CassandraConfig,
    pub auth: AuthConfig,
    pub telemetry: TelemetryConfig,
    pub api: ApiConfig,
    /// The attachments' object store (`CHAT__OBJECTS__*`).
    pub objects: ObjectsConfig,
}

/// How the API serves requests.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// On shutdown, seconds that requests in flight get to finish before they are dropped
    /// (below the 15 s after which deploy/stack.sh and compose send SIGKILL).
    pub drain_secs: u64,
    /// A request not answered within this many seconds gets 503 `timeout` (below nginx's 60 s
    /// proxy timeout, so the client gets our answer rather than a gateway timeout).
    pub request_timeout_secs: u64,
    /// Threads computing argon2 hashes (each keeps 19 MiB); 0: one per core, at most 4.
    pub hash_threads: usize,
    /// Comma-separated addresses or networks of the load balancers, whose `X-Real-IP` /
    /// `X-Forwarded-For` name the client. By default loopback and the private networks, where
    /// nginx runs in the native stack and in compose.
    pub trusted_proxies: String,
    pub rate_limits: throttle::RateLimitConfig,
    /// The largest attachment in bytes (nginx's `/chat-attachments/` takes up to 26 MiB).
    pub attachment_max_bytes: u64,
    /// Comma-separated bundle ids of the apps the notifier serves: devices of other apps are
    /// refused at registration (`invalid_bundle_id`). A provider key may send to every app of
    /// its team, and a token of an app APNs does not pair with the topic is refused per
    /// notification (`DeviceTokenNotForTopic`): better told once, at registration. Empty: any
    /// well-formed bundle id.
    pub bundle_ids: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            drain_secs: 10,
            request_timeout_secs: 30,
            hash_threads: 0,
            trusted_proxies: "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
                .into(),
            rate_limits: throttle::RateLimitConfig::default(),
            attachment_max_bytes: chat_types::limits::ATTACHMENT_MAX_BYTES,
            bundle_ids: String::new(),
        }
    }
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
            api: ApiConfig::default(),
            objects: ObjectsConfig::default(),
        }
    }
}

pub struct AppState {
    pub db: chat_store::pg::PgPool,
    pub store: chat_store::cql::MessageStore,
    pub redis: chat_store::Redis,
    pub epochs: chat_store::epochs::MemberEpochs,
    /// Who is online, and last seen (read only: the gateways keep it).
    pub presence: chat_store::presence::Presence,
    pub revocations: chat_store::revocations::Revocations,
    pub tickets: chat_store::ws_tickets::WsTickets,
    pub producer: chat_store::bus::Producer,
    pub keys: TokenKeys,
    pub refresh_ttl_secs: u64,
    pub hasher: hashing::HashPool,
    pub throttle: throttle::Throttle,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The attachments' bucket: presigned URLs, and the checks at `complete`.
    pub objects: chat_store::objects::Objects,
    pub attachment_max_bytes: u64,
    /// `api.bundle_ids`, parsed; empty: any.
    pub bundle_ids: Vec<String>,
}

pub type SharedState = Arc<AppState>;

pub struct Application {
    state: SharedState,
    metrics: PrometheusHandle,
    http_listener: tokio::net::TcpListener,
    ops_listener: tokio::net::TcpListener,
    drain: std::time::Duration,
    request_timeout: std::time::Duration,
    /// The process's shutdown token, and every task of the API, drained (bounded) at the end.
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Application {
    /// Connect to the stores and bind both listeners. `shutdown` is the one token everything
    /// the API runs races; cancelling it starts the drain of [`Self::run_until_stopped`].
    pub async fn build(
        cfg: Config,
        metrics: PrometheusHandle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let keys = TokenKeys::new(&cfg.auth.secret()?, cfg.auth.access_ttl_secs);
        let throttle = throttle::Throttle::new(&cfg.api.rate_limits)?;
        let trusted_proxies =
            throttle::parse_networks("api.trusted_proxies", &cfg.api.trusted_proxies)?;
        if cfg.api.attachment_max_bytes == 0 {
            anyhow::bail!("api.attachment_max_bytes must be at least 1");
        }
        let bundle_ids = notifications::parse_bundle_ids(&cfg.api.bundle_ids)?;
        let objects = chat_store::objects::Objects::new(&cfg.objects)?;
        // Searches and directory pages: their best plans depend on the values.
        let db = chat_store::pg::connect(&cfg.postgres, chat_store::pg::Planning::Auto).await?;
        let store = chat_store::cql::MessageStore::connect(&cfg.cassandra, db.clone()).await?;
        let redis = chat_store::Redis::connect(&cfg.redis).await?;
        let producer = chat_store::bus::Producer::new(&cfg.kafka)?;
        let hash_threads = match cfg.api.hash_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
            n => n,
        };
        let state = Arc::new(AppState {
            db,
            store,
            epochs: chat_store::epochs::MemberEpochs::new(redis.clone()),
            presence: chat_store::presence::Presence::new(redis.clone()),
            revocations: chat_store::revocations::Revocations::new(redis.clone()),
            tickets: chat_store::ws_tickets::WsTickets::new(redis.clone()),
            redis,
            producer,
            keys,
            refresh_ttl_secs: cfg.auth.refresh_ttl_secs,
            hasher: hashing::HashPool::start(hash_threads)?,
            throttle,
            trusted_proxies,
            objects,
            attachment_max_bytes: cfg.api.attachment_max_bytes,
            bundle_ids,
        });
        Ok(Application {
            state,
            metrics,
            http_listener: tokio::net::TcpListener::bind(&cfg.http.listen).await?,
            ops_listener: tokio::net::TcpListener::bind(&cfg.ops.listen).await?,
            drain: std::time::Duration::from_secs(cfg.api.drain_secs),
            request_timeout: std::time::Duration::from_secs(cfg.api.request_timeout_secs),
            shutdown,
            tasks: TaskTracker::new(),
        })
    }

    /// Serve until the shutdown token is cancelled, then let requests in flight finish, at most
    /// `api.drain_secs`.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let ready = chat_common::ops::ready_check(self.state.clone(), |s| async move {
            chat_store::pg::ping(&s.db).await?;
            s.redis.ping().await.map_err(|e| format!("redis: {e}"))?;
            // History needs Cassandra: not ready while the driver's pool is reconnecting.
            s.store.ping().await
        });
        let ops = chat_common::ops::router(self.metrics.clone(), ready);
        let app = routes::router(self.state.clone(), self.request_timeout);
        // Throttle buckets of clients and accounts not seen for a while are dropped.
        let throttle_state = self.state.clone();
        let throttle_stop = shutdown.clone();
        self.tasks.spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every.tick() => throttle_state.throttle.forget_idle(),
                    () = throttle_stop.cancelled() => return,
                }
            }
        });
        self.tasks.spawn(chat_common::ops::serve(
            "ops",
            self.ops_listener,
            ops,
            shutdown.clone(),
        ));
        tracing::info!(addr = %self.http_listener.local_addr()?, "api listening");
        // The peer address feeds the client address (throttling behind a trusted proxy).
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let (listener, stop) = (self.http_listener, shutdown.clone());
        self.tasks.spawn(async move {
            if let Err(e) = axum::serve(chat_common::ops::accepting(listener), app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "api server failed");
            }
        });
        shutdown.cancelled().await;
        chat_common::shutdown::drain(&self.tasks, self.drain).await;
        Ok(())
    }
}
