//! Typed configuration. Every field has a default that works with the native stack
//! (`deploy/stack.sh up`), and every field can be overridden from the environment:
//! `CHAT__POSTGRES__URL`, `CHAT__AUTH__JWT_SECRET`, `CHAT__GATEWAY__PUBLIC_ADDR`, ...
//! (sections and keys joined by `__`). `CHAT_CONFIG=<file.toml>` adds a file below the
//! environment.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Load a service's configuration: defaults, then `$CHAT_CONFIG`, then `CHAT__*` variables.
pub fn load<T: Serialize + DeserializeOwned + Default>() -> anyhow::Result<T> {
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Ok(path) = std::env::var("CHAT_CONFIG") {
        fig = fig.merge(Toml::file_exact(path));
    }
    fig = fig.merge(Env::prefixed("CHAT__").split("__"));
    fig.extract()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    pub url: String,
    pub max_connections: u32,
    /// PostgreSQL ends any statement running longer than this (its `statement_timeout`), so a
    /// stuck query cannot hold a connection and a request forever; 0 switches it off.
    pub statement_timeout_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: "postgres://chat:chat@127.0.0.1:15432/chat".into(),
            max_connections: 16,
            statement_timeout_ms: 10_000,
        }
    }
}

impl PostgresConfig {
    /// `url` with the session settings of this configuration (`statement_timeout`) added as
    /// connection options, unless the URL already sets them.
    pub fn connect_url(&self) -> anyhow::Result<String> {
        if self.statement_timeout_ms == 0 || self.url.contains("statement_timeout") {
            return Ok(self.url.clone());
        }
        if !self.url.starts_with("postgres://") && !self.url.starts_with("postgresql://") {
            anyhow::bail!("postgres.url must be a postgres:// URL");
        }
        let sep = if self.url.contains('?') { '&' } else { '?' };
        // sqlx reads `options[NAME]=VALUE` as `-c NAME=VALUE` at connection start-up.
        Ok(format!(
            "{}{sep}options%5Bstatement_timeout%5D={}",
            self.url, self.statement_timeout_ms
        ))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:16379/".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub brokers: String,
    pub topic: String,
    /// Partitions `chat-admin` creates the topic with. Fixed for the topic's life: a channel's
    /// partition, and so its order, depends on it.
    pub partitions: i32,
    /// Copies of each partition `chat-admin` creates the topic with (1 on one broker; 3 on a
    /// cluster).
    pub replication_factor: i32,
    /// The topic's `min.insync.replicas`: with the producer's `acks=all`, a send is acked only
    /// once this many copies have it (1 on one broker; 2 with three copies).
    pub min_insync_replicas: i32,
    pub consumer_group: String,
    /// How long a producer (the gateways, the API) waits for more records before sending a
    /// produce request (`linger.ms`): a request costs the broker about as much CPU whether it
    /// carries one record or many, and every record waits this long for its ack.
    pub linger_ms: u32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:19092".into(),
            topic: chat_types::bus::TOPIC.into(),
            partitions: 16,
            replication_factor: 1,
            min_insync_replicas: 1,
            consumer_group: "chat-message-servers".into(),
            linger_ms: 1,
        }
    }
}

impl KafkaConfig {
    /// The replication settings make sense together.
    pub fn check_replication(&self) -> anyhow::Result<()> {
        if self.replication_factor < 1
            || self.min_insync_replicas < 1
            || self.min_insync_replicas > self.replication_factor
        {
            anyhow::bail!(
                "kafka.min_insync_replicas ({}) must be between 1 and kafka.replication_factor ({})",
                self.min_insync_replicas,
                self.replication_factor
            );
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CassandraConfig {
    /// Comma-separated `host:port` list of ScyllaDB or Cassandra nodes.
    pub nodes: String,
    pub keyspace: String,
    /// Replication factor `chat-admin` creates the keyspace with.
    pub replication_factor: u32,
    /// Consistency of every read and write. `local_quorum` (the default) keeps an acked
    /// message through the loss of a minority of its replicas; on one node it is one.
    pub consistency: CqlConsistency,
    /// A request not answered after this many milliseconds is also sent to the next replica
    /// (up to twice), and the first answer wins; 0 turns it off. Why: a node cut off from the
    /// network (not dead: no reset, no refusal) holds every request it coordinates until the
    /// driver's 30 s time-out, which stalled delivery for the whole cut; every statement of
    /// ours is idempotent, so asking again elsewhere is safe.
    pub speculative_after_ms: u64,
}

/// CQL consistency levels the services may be configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CqlConsistency {
    One,
    LocalOne,
    Quorum,
    LocalQuorum,
    EachQuorum,
    All,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        CassandraConfig {
            nodes: "127.0.0.1:19042".into(),
            keyspace: "chat".into(),
            replication_factor: 1,
            consistency: CqlConsistency::LocalQuorum,
            speculative_after_ms: 250,
        }
    }
}

impl CassandraConfig {
    pub fn node_list(&self) -> Vec<String> {
        split_list(&self.nodes)
    }
}

/// Secrets may be given inline or as a file path (Docker secrets, the native stack's key file).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(skip_serializing)]
    pub jwt_secret: Option<SecretString>,
    pub jwt_secret_file: Option<String>,
    /// Lifetime of access tokens, seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of refresh tokens, seconds.
    pub refresh_ttl_secs: u64,
}

impl AuthConfig {
    pub fn with_defaults() -> Self {
        AuthConfig {
            jwt_secret: None,
            jwt_secret_file: None,
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
        }
    }

    /// The signing key, from `jwt_secret` or the file `jwt_secret_file`; at least 32 bytes.
    pub fn secret(&self) -> anyhow::Result<SecretString> {
        let s = read_secret("auth.jwt_secret", &self.jwt_secret, &self.jwt_secret_file)?;
        if s.expose_secret().len() < 32 {
            anyhow::bail!("auth.jwt_secret must be at least 32 bytes long");
        }
        Ok(s)
    }
}

/// The credential message servers present to the gateways' delivery endpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InternalConfig {
    #[serde(skip_serializing)]
    pub token: Option<SecretString>,
    pub token_file: Option<String>,
}

impl InternalConfig {
    pub fn token(&self) -> anyhow::Result<SecretString> {
        let s = read_secret("internal.token", &self.token, &self.token_file)?;
        if s.expose_secret().len() < 16 {
            anyhow::bail!("internal.token must be at least 16 bytes long");
        }
        Ok(s)
    }
}

/// The S3-compatible object store holding attachments (versitygw in the stacks). The services
/// talk to `endpoint`; clients reach the bucket through nginx (`location /chat-attachments/`,
/// which passes the `Host` header on) on the origin they opened the app at, and presigned URLs
/// name that origin, since SigV4 signs the host the client sends: the API's request's origin
/// when it is valid (and in `public_origins`, when that is set), else `public_base`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectsConfig {
    /// Where the services reach the store's S3 API, e.g. `http://127.0.0.1:19000`.
    pub endpoint: String,
    /// Origin the presigned URLs name when the request's own origin cannot be used (no valid
    /// `Host`, or one not in `public_origins`): the load balancer clients use, e.g.
    /// `http://127.0.0.1:8080` (scheme, host and port only).
    pub public_base: String,
    /// Comma-separated origins (`https://chat.example.com`) presigned URLs may name. Empty (the
    /// default): any valid origin a request came through; production sets its one public origin.
    pub public_origins: String,
    pub bucket: String,
    pub region: String,
    #[serde(skip_serializing)]
    pub access_key: Option<SecretString>,
    pub access_key_file: Option<String>,
    #[serde(skip_serializing)]
    pub secret_key: Option<SecretString>,
    pub secret_key_file: Option<String>,
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        ObjectsConfig {
            endpoint: "http://127.0.0.1:19000".into(),
            public_base: "http://127.0.0.1:8080".into(),
            public_origins: String::new(),
            bucket: "chat-attachments".into(),
            region: "us-east-1".into(),
            access_key: None,
            access_key_file: None,
            secret_key: None,
            secret_key_file: None,
        }
    }
}

impl ObjectsConfig {
    /// `public_origins` as a list (empty: any origin).
    pub fn public_origin_list(&self) -> Vec<String> {
        split_list(&self.public_origins)
    }

    /// The access key id, from `access_key` or the file `access_key_file`.
    pub fn access_key(&self) -> anyhow::Result<SecretString> {
        read_secret(
            "objects.access_key",
            &self.access_key,
            &self.access_key_file,
        )
    }

    /// The secret access key, from `secret_key` or the file `secret_key_file`.
    pub fn secret_key(&self) -> anyhow::Result<SecretString> {
        read_secret(
            "objects.secret_key",
            &self.secret_key,
            &self.secret_key_file,
        )
    }
}

fn read_secret(
    name: &str,
    inline: &Option<SecretString>,
    file: &Option<String>,
) -> anyhow::Result<SecretString> {
    if let Some(s) = inline {
        return Ok(s.clone());
    }
    if let Some(path) = file {
        let s = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{name}_file: cannot read {path}: {e}"))?;
        return Ok(SecretString::from(s.trim().to_owned()));
    }
    anyhow::bail!(
        "{name} is not set: set CHAT__{}__{} or its _FILE variant",
        name.split('.').next().unwrap_or_default().to_uppercase(),
        name.split('.').nth(1).unwrap_or_default().to_uppercase()
    )
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `tracing` filter, e.g. `info,chat_gateway=debug`. `RUST_LOG` wins when set.
    pub filter: String,
    /// JSON lines instead of human-readable logs.
    pub json: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            // The CQL driver logs every (re)connection at info.
            filter: "info,scylla=warn".into(),
            json: false,
        }
    }
}

pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An address to listen on.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub listen: String,
}

impl ListenConfig {
    pub fn new(addr: &str) -> Self {
        ListenConfig {
            listen: addr.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Stores {
        kafka: KafkaConfig,
        cassandra: CassandraConfig,
    }

    #[test]
    // figment's Jail wants its own (large) error type from the closure.
    #[allow(clippy::result_large_err)]
    fn replication_and_consistency_are_configuration() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHAT__KAFKA__REPLICATION_FACTOR", "3");
            jail.set_env("CHAT__KAFKA__MIN_INSYNC_REPLICAS", "2");
            jail.set_env("CHAT__CASSANDRA__REPLICATION_FACTOR", "3");
            jail.set_env("CHAT__CASSANDRA__CONSISTENCY", "quorum");
            let s: Stores = load().expect("loads");
            assert_eq!(
                (s.kafka.replication_factor, s.kafka.min_insync_replicas),
                (3, 2)
            );
            assert!(s.kafka.check_replication().is_ok());
            assert_eq!(s.cassandra.replication_factor, 3);
            assert_eq!(s.cassandra.consistency, CqlConsistency::Quorum);
            jail.set_env("CHAT__KAFKA__MIN_INSYNC_REPLICAS", "4");
            let s: Stores = load().expect("loads");
            assert!(
                s.kafka.check_replication().is_err(),
                "more in-sync copies than copies"
            );
            jail.set_env("CHAT__CASSANDRA__CONSISTENCY", "most");
            assert!(
                load::<Stores>().is_err(),
                "an unknown level is refused at start"
            );
            Ok(())
        });
        // The laptop defaults: one broker, one node.
        let d = Stores::default();
        assert_eq!(
            (d.kafka.replication_factor, d.kafka.min_insync_replicas),
            (1, 1)
        );
        assert_eq!(d.cassandra.consistency, CqlConsistency::LocalQuorum);
    }

    #[test]
    fn the_statement_timeout_travels_as_a_connection_option() {
        let mut pg = PostgresConfig::default();
        assert_eq!(
            pg.connect_url().unwrap(),
            "postgres://chat:chat@127.0.0.1:15432/chat?options%5Bstatement_timeout%5D=10000"
        );
        pg.url = "postgres://u:p@h/db?sslmode=disable".into();
        pg.statement_timeout_ms = 250;
        assert_eq!(
            pg.connect_url().unwrap(),
            "postgres://u:p@h/db?sslmode=disable&options%5Bstatement_timeout%5D=250"
        );
        pg.statement_timeout_ms = 0;
        assert_eq!(pg.connect_url().unwrap(), pg.url);
    }
}
