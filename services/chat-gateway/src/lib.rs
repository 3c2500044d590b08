//! The WebSocket gateway. Stateless: everything it knows is rebuilt from its live sockets.
//!
//! A client connects to `/ws` (through nginx) with an access token. The gateway registers the
//! user in Redis (`presence`), sends `ready`, and then serves two directions:
//! - **send**: check membership, claim the `client_msg_id` (so a resend through any gateway is
//!   acked with the original message), produce the record to Kafka keyed by channel, and `ack`
//!   once Kafka has it;
//! - **deliver**: message servers POST batches to the internal endpoint; each event goes to the
//!   bounded queue of every local connection of its recipients. Each connection's writer drops
//!   what it already sent (by channel position) and fills gaps from history, so delivery to the
//!   client is exactly once and in order even when pushes were replayed or missed.
//!
//! # Layout
//! - [`session`]: one connection: authentication, the reader, the writer and the sequencer
//!   that orders what the writer sends.
//! - [`admission`]: the one gate a send passes (fields, membership, send claim).
//! - [`hub`]: the local registry of connections and the presence heartbeat.
//! - [`deliver`]: the internal delivery endpoint; [`member_lists`]: the big channels' member
//!   lists it keeps.
//! - [`ephemeral`]: typing indicators and presence changes (pushed to other gateways through
//!   their delivery endpoints; never stored).
//! - [`revocation`]: closing the sockets of revoked sessions (logout, refresh-token reuse).
//! - [`reads`]: read marks: coalesced, passed to the user's other devices, stored.

pub mod admission;
pub mod changes;
pub mod deliver;
pub mod ephemeral;
pub mod hub;
pub mod member_lists;
pub mod reads;
pub mod revocation;
pub mod session;

use chat_common::auth::TokenKeys;
use chat_common::config::{
    AuthConfig, CassandraConfig, InternalConfig, KafkaConfig, ListenConfig, PostgresConfig,
    RedisConfig, TelemetryConfig,
};
use chat_common::telemetry::PrometheusHandle;
use chat_store::bus::Producer;
use chat_store::claims::SendClaims;
use chat_store::cql::MessageStore;
use chat_store::epochs::MemberEpochs;
use chat_store::pg::PgPool;
use chat_store::presence::Presence;
use chat_store::read_feed::ReadMarkAnnouncer;
use chat_store::revocations::Revocations;
use chat_store::ws_tickets::WsTickets;
use serde::{Deserialize, Serialize};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where clients' WebSockets arrive (behind nginx).
    pub http: ListenConfig,
    /// Internal: delivery endpoint, health, metrics. Never exposed through nginx.
    pub ops: ListenConfig,
    pub gateway: GatewayConfig,
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub kafka: KafkaConfig,
    pub cassandra: CassandraConfig,
    pub auth: AuthConfig,
    pub internal: InternalConfig,
    pub telemetry: TelemetryConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    pub id: String,
    /// The URL message servers use to reach this gateway's ops port; stored in presence.
    pub internal_url: String,
    /// Frames queued per connection before it counts as a slow consumer and is closed.
    pub queue_capacity: usize,
    /// Bytes of frames queued per connection before it counts as a slow consumer.
    pub queue_bytes: usize,
    /// Sends of one connection waiting for Kafka at a time; past that its socket is not read
    /// until acks come back.
    pub max_sends_in_flight: usize,
    /// A user's sends per second (token bucket per user and gateway); past it a send is
    /// refused with `rate_limited` and a retry time.
    pub sends_per_second: NonZeroU32,
    pub send_burst: NonZeroU32,
    /// Frames per second one connection may send (any type); past it its socket is not read
    /// for a while (back-pressure, no error).
    pub frames_per_second: NonZeroU32,
    pub frame_burst: NonZeroU32,
    /// Connections one user may hold on one gateway; more are refused with 429.
    pub max_connections_per_user: usize,
    pub ping_interval_secs: u64,
    /// A connection silent (no frame, no pong) this long is closed.
    pub idle_timeout_secs: u64,
    /// Live messages are held this long after `ready` unless the client's first frame comes
    /// sooner, so that a `resume` sent right after connecting is served before them.
    pub resume_hold_ms: u64,
    /// WebSocket read buffer per connection. Small: idle memory per connection is dominated by it.
    pub read_buffer_bytes: usize,
    pub write_buffer_bytes: usize,
    pub max_frame_bytes: usize,
    /// Longest a channel membership confirmed by PostgreSQL is reused for sends. A leave ends it
    /// at once (the user's membership epoch in Redis moves); this only bounds what Redis losing
    /// the epoch could allow.
    pub membership_cache_secs: u64,
    /// How long a send claim is kept in Redis (~170 bytes each): a resend within it is acked
    /// with the first send's time; a later one still creates no second message. Sizing:
    /// docs/operations.md.
    pub send_claim_ttl_secs: u64,
    /// Time limit of one push of a typing indicator or presence change to a gateway.
    pub ephemeral_push_timeout_ms: u64,
    /// Bounded drain on shutdown.
    pub drain_secs: u64,
    /// Tokio worker threads; unset: one per core this process may use (cgroup quotas count).
    /// A gateway's work is short I/O steps, and a second worker mostly wakes up to steal
    /// them: where gateways share cores with each other and the rest of the stack, one each
    /// costs less CPU and cuts the tail (docs/benchmarks.md, tuning log 24).
    pub worker_threads: Option<NonZeroUsize>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            id: "gateway-1".into(),
            internal_url: "http://127.0.0.1:9101".into(),
            queue_capacity: 4096,
            queue_bytes: 4 * 1024 * 1024,
            max_sends_in_flight: 64,
            sends_per_second: nz(20),
            send_burst: nz(200),
            frames_per_second: nz(100),
            frame_burst: nz(400),
            max_connections_per_user: 32,
            ping_interval_secs: 25,
            idle_timeout_secs: 75,
            resume_hold_ms: 1000,
            read_buffer_bytes: 1024,
            write_buffer_bytes: 16 * 1024,
            max_frame_bytes: 64 * 1024,
            membership_cache_secs: 300,
            send_claim_ttl_secs: 24 * 3600,
            ephemeral_push_timeout_ms: 1000,
            drain_secs: 5,
            worker_threads: None,
        }
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: ListenConfig::new("127.0.0.1:8101"),
            ops: ListenConfig::new("127.0.0.1:9101"),
            gateway: GatewayConfig::default(),
            postgres: PostgresConfig::default(),
            redis: RedisConfig::default(),
            kafka: KafkaConfig::default(),
            cassandra: CassandraConfig::default(),
            auth: AuthConfig::with_defaults(),
            internal: InternalConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// What every connection and handler shares.
pub struct Shared {
    pub cfg: GatewayConfig,
    pub db: PgPool,
    pub store: MessageStore,
    pub presence: Presence,
    /// Revoked sessions: checked at the upgrade; their live sockets are closed by [`revocation`].
    pub revocations: Revocations,
    /// Single-use tickets that open a socket (`/ws?ticket=`).
    pub tickets: WsTickets,
    pub recent_revocations: revocation::RecentRevocations,
    /// Read marks waiting to be announced to other gateways and stored ([`reads`]).
    pub read_marks: reads::PendingMarks,
    pub read_announcer: ReadMarkAnnouncer,
    pub admission: admission::Admission,
    /// Typing indicators and presence announcements.
    pub ephemeral: ephemeral::Ephemeral,
    pub producer: Producer,
    pub keys: TokenKeys,
    pub internal_token: secrecy::SecretString,
    pub hub: hub::Hub,
    /// Big channels' member lists, kept from the batches that carried them ([`deliver`]).
    pub member_lists: member_lists::MemberLists,
    /// The process's shutdown token: connections, handlers and the heartbeat race it.
    pub shutdown: CancellationToken,
    /// Every task of the gateway, waited for (bounded) at shutdown.
    pub tasks: TaskTracker,
}

/// The gateway's tokio runtime: `gateway.worker_threads` workers, or one per core this
/// process may use.
pub fn runtime(cfg: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cfg.gateway.worker_threads {
        builder.worker_threads(n.get());
    }
    builder.enable_all().build()
}

pub struct Application {
    shared: Arc<Shared>,
    /// For the revocation subscription, which needs a connection of its own.
    redis_url: String,
    metrics: PrometheusHandle,
    http_listener: tokio::net::TcpListener,
    ops_listener: tokio::net::TcpListener,
}

impl Application {
    /// Connect to the stores and bind both listeners. `shutdown` is the one token everything
    /// the gateway runs races; cancelling it starts the drain of [`Self::run_until_stopped`].
    pub async fn build(
        cfg: Config,
        metrics: PrometheusHandle,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let keys = TokenKeys::new(&cfg.auth.secret()?, cfg.auth.access_ttl_secs);
        let internal_token = cfg.internal.token()?;
        // Key lookups only; the DM-peer query was planned at every connect and disconnect.
        let db = chat_store::pg::connect(&cfg.postgres, chat_store::pg::Planning::Generic).await?;
        let store = MessageStore::connect(&cfg.cassandra, db.clone()).await?;
        let redis = chat_store::Redis::connect(&cfg.redis).await?;
        let producer = Producer::new(&cfg.kafka)?;
        let http_listener = tokio::net::TcpListener::bind(&cfg.http.listen).await?;
        let ops_listener = tokio::net::TcpListener::bind(&cfg.ops.listen).await?;
        let admission = admission::Admission::new(
            db.clone(),
            store.clone(),
            SendClaims::new(
                redis.clone(),
                Duration::from_secs(cfg.gateway.send_claim_ttl_secs),
            ),
            MemberEpochs::new(redis.clone()),
            Duration::from_secs(cfg.gateway.membership_cache_secs),
            admission::SendRate {
                per_second: cfg.gateway.sends_per_second,
                burst: cfg.gateway.send_burst,
            },
        );
        let tasks = TaskTracker::new();
        let presence = Presence::new(redis.clone());
        let ephemeral = ephemeral::Ephemeral::new(
            db.clone(),
            presence.clone(),
            chat_store::push::Fanout::new(
                presence.clone(),
                cfg.internal.token()?,
                Duration::from_millis(cfg.gateway.ephemeral_push_timeout_ms),
                tasks.clone(),
            )?,
        );
        let shared = Arc::new(Shared {
            cfg: cfg.gateway,
            db,
            store,
            presence,
            revocations: Revocations::new(redis.clone()),
            read_announcer: ReadMarkAnnouncer::new(redis.clone()),
            tickets: WsTickets::new(redis),
            recent_revocations: revocation::RecentRevocations::default(),
            read_marks: reads::PendingMarks::default(),
            admission,
            ephemeral,
            producer,
            keys,
            internal_token,
            hub: hub::Hub::default(),
            member_lists: member_lists::MemberLists::default(),
            shutdown,
            tasks,
        });
        Ok(Application {
            shared,
            redis_url: cfg.redis.url.clone(),
            metrics,
            http_listener,
            ops_listener,
        })
    }

    /// Serve until the shutdown token is cancelled, then drain: every client is told to
    /// reconnect elsewhere (1001) and deregistered, acks in flight are sent, all bounded by
    /// `drain_secs`.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        let ws_app = axum::Router::new()
            .route("/ws", axum::routing::get(session::upgrade))
            .with_state(shared.clone());
        let ready = chat_common::ops::ready_check(shared.clone(), |s| async move {
            s.presence.ping().await.map_err(|e| format!("redis: {e}"))?;
            chat_store::pg::ping(&s.db).await
        });
        let ops_app = chat_common::ops::router(self.metrics.clone(), ready).merge(
            axum::Router::new()
                .route(
                    chat_types::internal::DELIVER_PATH,
                    axum::routing::post(deliver::deliver),
                )
                .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
                .route_layer(axum::middleware::from_fn_with_state(
                    shared.clone(),
                    deliver::require_credential,
                ))
                .with_state(shared.clone()),
        );

        let stop = shared.shutdown.clone();
        shared.tasks.spawn(hub::heartbeat(shared.clone()));
        shared
            .tasks
            .spawn(revocation::follow(shared.clone(), self.redis_url.clone()));
        shared
            .tasks
            .spawn(reads::follow(shared.clone(), self.redis_url.clone()));
        shared.tasks.spawn(reads::flush(shared.clone()));
        let serve = chat_common::ops::serve;
        shared
            .tasks
            .spawn(serve("websocket", self.http_listener, ws_app, stop.clone()));
        shared
            .tasks
            .spawn(serve("ops", self.ops_listener, ops_app, stop.clone()));
        tracing::info!(gateway = %shared.cfg.id, "gateway running");

        stop.cancelled().await;
        tracing::info!(connections = shared.hub.len(), "draining connections");
        chat_common::shutdown::drain(&shared.tasks, Duration::from_secs(shared.cfg.drain_secs))
            .await;
        // Connections closed and deregistered: big channels' pushes stop coming here now
        // rather than until the listing lapses (pushes to a closed port fail and are retried).
        if let Err(e) = shared.presence.withdraw(&shared.cfg.internal_url).await {
            tracing::warn!(error = %e, "gateway not withdrawn from the listing; it lapses");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_has_the_configured_workers_and_by_default_one_per_core() {
        let mut cfg = Config::default();
        cfg.gateway.worker_threads = NonZeroUsize::new(1);
        assert_eq!(runtime(&cfg).unwrap().metrics().num_workers(), 1);
        cfg.gateway.worker_threads = None;
        // (tokio's own variable, if this environment sets it, stands in for the core count)
        let cores = std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().unwrap().get());
        assert_eq!(runtime(&cfg).unwrap().metrics().num_workers(), cores);
    }
}
