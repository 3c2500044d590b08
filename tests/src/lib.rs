//! End-to-end tests of the public contract: REST and WebSockets through nginx, exactly as the
//! web and iOS clients use them, with the shared `chat-client`. Nothing here talks to a service
//! or store directly.
//!
//! Every wait has a timeout; every name is unique per run, so tests can share one stack.

pub mod apns;
pub mod files;
pub mod harness;
pub mod partitions;

use chat_client::{Api, Connection, Connector};
use chat_types::ChannelId;
use chat_types::rest::Session;
use std::time::Duration;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The password of every user the tests register.
pub const PASSWORD: &str = "correct horse battery";

/// The load balancer: `CHAT_BASE_URL`, default the native stack's nginx.
pub fn base_url() -> String {
    std::env::var("CHAT_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

/// The stack's Kafka bootstrap servers (`CHAT__KAFKA__BROKERS`, as for the services; the native
/// stack's single broker otherwise).
pub fn kafka_brokers() -> String {
    std::env::var("CHAT__KAFKA__BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

/// A name nobody else in this run uses.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..12])
}

/// The REST API through nginx; every call within [`TIMEOUT`].
pub fn api() -> Api {
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("http client");
    Api::with_client(&base_url(), http)
}

/// A new user named `<prefix><unique>`.
pub async fn register(api: &Api, prefix: &str) -> anyhow::Result<Session> {
    Ok(api.register(&unique(prefix), PASSWORD, None).await?)
}

/// WebSockets through nginx; every read within [`TIMEOUT`].
pub fn connector() -> Connector {
    Connector::for_base(&base_url()).frame_timeout(TIMEOUT)
}

/// One WebSocket through nginx, after its `ready` frame.
pub async fn connect(token: &str) -> anyhow::Result<Connection> {
    Ok(connector().connect(token).await?)
}

/// Connect until the connection lands on a gateway other than `not` (nginx spreads new
/// connections over the gateways; a few tries always reach the other one).
pub async fn connect_elsewhere(token: &str, not: &str) -> anyhow::Result<Connection> {
    connect_until(token, |g| g != not)
        .await
        .map(|(ws, _)| ws)
        .map_err(|_| {
            anyhow::anyhow!("every connection landed on {not}: is only one gateway behind nginx?")
        })
}

/// Connect until the connection lands on `gateway`; also how many connections that took.
pub async fn connect_to(token: &str, gateway: &str) -> anyhow::Result<(Connection, usize)> {
    connect_until(token, |g| g == gateway)
        .await
        .map_err(|_| anyhow::anyhow!("no connection landed on {gateway}: is it behind nginx?"))
}

/// Up to 20 connections, each closed unless its gateway is `wanted` (nginx's round-robin over
/// a handful of gateways reaches each within a few).
async fn connect_until(
    token: &str,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<(Connection, usize)> {
    for tries in 1..=20 {
        let ws = connect(token).await?;
        if wanted(ws.gateway()) {
            return Ok((ws, tries));
        }
    }
    anyhow::bail!("no connection reached the gateway wanted")
}

/// The native stack's state folder (`CHAT_STACK_DIR`, default `~/.cache/chat-stack`): its
/// generated secrets are in `run/secrets/`.
pub fn stack_dir() -> String {
    std::env::var("CHAT_STACK_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/chat-stack",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// An access token for `user` valid for `secs` seconds, signed with the native stack's key
/// (`$CHAT_STACK_DIR/run/secrets/jwt_secret`): the way to hold a token that is about to expire,
/// or has (`secs` = 0), without waiting out the API's 15 minutes.
pub fn access_token(user: &chat_types::UserId, secs: u64) -> anyhow::Result<String> {
    use chat_common::auth::TokenKeys;
    use chat_common::config::AuthConfig;
    let stack_dir = stack_dir();
    let config = AuthConfig {
        jwt_secret_file: Some(format!("{stack_dir}/run/secrets/jwt_secret")),
        ..AuthConfig::with_defaults()
    };
    Ok(TokenKeys::new(&config.secret()?, secs).issue_access(*user))
}

/// Connections of `count` new members of `channel`, to spread a burst of sends over several
/// users: one user may send 200 messages at once, then 20 a second (the gateways' default send
/// rate), so a test that fills a channel quickly sends from a few users.
pub async fn senders(
    api: &Api,
    channel: ChannelId,
    count: usize,
) -> anyhow::Result<Vec<Connection>> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let s = register(api, "sender").await?;
        api.join(&s.access_token, channel).await?;
        out.push(connect(&s.access_token).await?);
    }
    Ok(out)
}

/// The checkout the tests run from. Read at run time (`cargo test` sets `CARGO_MANIFEST_DIR`):
/// the build directory is shared between checkouts, and a test binary compiled in another
/// checkout must not reach into that one.
pub fn repo_root() -> std::path::PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    manifest
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Until every one of these `/readyz` URLs (a service's ops port) answers 200, at most `within`:
/// after a store was restarted, the services' drivers reconnect on their own schedule.
pub async fn wait_until_ready(readyz_urls: &[String], within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    for url in readyz_urls {
        loop {
            match reqwest::get(url).await {
                Ok(r) if r.status().is_success() => break,
                answer => anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "{url} not ready within {within:?}: {answer:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Until every gateway named answers a `resume` from Cassandra, at most `within`: after a
/// restart of Cassandra. A gateway stays ready while Cassandra is away (sends go on through
/// Kafka), so its `/readyz` does not say when its driver has a connection again, and the driver
/// refills a broken pool with a backoff that grows to ~10 s: a test right after the restart
/// had a reaction refused as unavailable 8 s after Cassandra listened again. A `resume` is
/// looked up in Cassandra (a few short retries, then the gateway closes with 1013 so that the
/// client resumes again); answered with `resumed`, the gateway reads Cassandra.
pub async fn wait_until_gateways_read_cassandra(
    gateways: &[&str],
    within: Duration,
) -> anyhow::Result<()> {
    use chat_types::ws::{ClientFrame, ServerFrame};
    let deadline = tokio::time::Instant::now() + within;
    let api = api();
    let user = register(&api, "cassandra-probe-").await?;
    let channel = api
        .create_channel(&user.access_token, &unique("cassandra-probe-"), None)
        .await?;
    let mut ws = connect(&user.access_token).await?;
    ws.send_acked(channel.id, &unique("probe-"), "probe")
        .await?;
    // Delivered live means stored: the message servers read and write Cassandra again.
    let stored = ws.next_message().await?;
    let resume = ClientFrame::Resume {
        channels: [(channel.id, stored.id)].into_iter().collect(),
    };
    for gateway in gateways {
        loop {
            let (mut probe, _) = connect_to(&user.access_token, gateway).await?;
            probe.send(&resume).await?;
            let answered = loop {
                match probe.next_within(TIMEOUT).await {
                    Ok(Some(ServerFrame::Resumed { .. })) => break true,
                    Ok(Some(_)) => {}
                    // Closed (1013: the lookup failed) or nothing within the timeout.
                    Ok(None) | Err(_) => break false,
                }
            };
            if answered {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{gateway} did not answer a resume from Cassandra within {within:?}"
            );
        }
    }
    Ok(())
}

/// A connection to the native stack's Redis (`CHAT_REDIS_ADDR`, default 127.0.0.1:16379), for
/// tests that look at what the services keep there.
pub async fn redis() -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let addr = std::env::var("CHAT_REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:16379".into());
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    Ok(client.get_multiplexed_async_connection().await?)
}

/// The native stack's PostgreSQL (`CHAT__POSTGRES__URL`, default the stack's), for tests that
/// look at what a service recorded there (the notifier's outbox).
pub async fn postgres() -> anyhow::Result<chat_store::pg::PgPool> {
    let url = std::env::var("CHAT__POSTGRES__URL")
        .unwrap_or_else(|_| "postgres://chat:chat@127.0.0.1:15432/chat".into());
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await?)
}

/// A CQL session on the native stack's Cassandra (`CHAT__CASSANDRA__NODES`, default the
/// stack's), in the messages' keyspace, for tests that look at what a service stored there.
pub async fn cassandra() -> anyhow::Result<scylla::client::session::Session> {
    let mut cfg = chat_common::config::CassandraConfig::default();
    if let Ok(nodes) = std::env::var("CHAT__CASSANDRA__NODES") {
        cfg.nodes = nodes;
    }
    Ok(chat_store::cql::connect(&cfg, true).await?)
}

/// `deploy/stack.sh <args>` (`kill gateway-1 -9`, `start gateway-1`, ...); returns once the
/// command has finished (a `start` waits for readiness). For tests that stop real processes.
pub async fn stack(args: &[&str]) -> anyhow::Result<()> {
    stack_with_env(args, &[]).await
}

/// [`stack`] with settings in its environment: `start` passes `CHAT__*` ones to the service it
/// starts (the topology's own settings win).
pub async fn stack_with_env(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let script = repo_root().join("deploy/stack.sh");
    let out = tokio::process::Command::new("bash")
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await?;
    if !out.status.success() {
        anyhow::bail!(
            "stack.sh {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Starts services a test stops, even when the test fails first. Armed before the kill; the
/// test ends it with [`Restart::start`] where it means to start them again. If the test returns
/// an error or panics before that, dropping the guard runs `deploy/stack.sh start` for each
/// (blocking: `Drop` cannot await), so the tests after it find the stack whole: without it, one
/// failure between a kill and its restart failed three more tests in CI. Starting a service that
/// is running (the kill never happened) does nothing.
#[must_use = "the services are started again when this is dropped"]
pub struct Restart {
    services: Vec<String>,
}

impl Restart {
    pub fn guard(services: &[&str]) -> Restart {
        Restart {
            services: services.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Start the services again, in order (each `start` waits for readiness). One that fails
    /// to start stays in the guard with those after it, so dropping it tries them again.
    pub async fn start(mut self) -> anyhow::Result<()> {
        while let Some(service) = self.services.first() {
            stack(&["start", service]).await?;
            self.services.remove(0);
        }
        Ok(())
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        for service in &self.services {
            eprintln!("the test stopped early: starting {service} again for the tests after it");
            let started = std::process::Command::new("bash")
                .arg(repo_root().join("deploy/stack.sh"))
                .args(["start", service])
                .status();
            if !matches!(started, Ok(s) if s.success()) {
                eprintln!("could not start {service} again: {started:?}");
            }
        }
    }
}

/// The value of an unlabelled metric in the Prometheus scrape of the ops endpoint
/// `127.0.0.1:<port>` (0 when the process has not recorded it yet: metrics appear on first use).
pub async fn metric(port: u16, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}
