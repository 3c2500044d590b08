//! `chat-admin migrate`: bring the stores and the broker to the schema this build expects.
//! Used by the native stack (`deploy/stack.sh up`) and by docker compose's `migrate` service.
//! Each step waits for its server (up to `--timeout` seconds, default 180) so it can run while
//! the servers are still starting.

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use chat_common::config::{
    CassandraConfig, KafkaConfig, ObjectsConfig, PostgresConfig, TelemetryConfig,
};
use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::{Duration, Instant};

/// One-shot operations on the stores and the broker. Settings come from the usual
/// configuration (defaults, `$CHAT_CONFIG`, `CHAT__*` variables).
#[derive(Parser)]
#[command(name = "chat-admin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the Kafka topic, apply the PostgreSQL migrations and the CQL schema, create the
    /// object store's bucket.
    Migrate {
        /// Seconds to wait for each server to accept the step before giving up.
        #[arg(long, default_value_t = 180, value_name = "SECONDS")]
        timeout: u64,
        /// Only these (comma-separated; default: all four), e.g. `--only kafka` to create the
        /// topic on a Kafka cluster brought up on its own (deploy/cluster/selftest.sh).
        #[arg(long, value_delimiter = ',', value_name = "STORES")]
        only: Vec<Store>,
    },
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Store {
    Postgres,
    Kafka,
    Cassandra,
    Objects,
}

const ALL: [Store; 4] = [
    Store::Postgres,
    Store::Kafka,
    Store::Cassandra,
    Store::Objects,
];

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct AdminConfig {
    postgres: PostgresConfig,
    kafka: KafkaConfig,
    cassandra: CassandraConfig,
    objects: ObjectsConfig,
    telemetry: TelemetryConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg: AdminConfig = chat_common::config::load()?;
    chat_common::telemetry::init("chat-admin", &cfg.telemetry);
    match cli.command {
        Command::Migrate { timeout, only } => {
            let stores = if only.is_empty() { &ALL[..] } else { &only[..] };
            migrate(&cfg, Duration::from_secs(timeout), stores).await
        }
    }
}

/// Every step at once (each waits for its server); the summary once all are done.
async fn migrate(cfg: &AdminConfig, timeout: Duration, stores: &[Store]) -> anyhow::Result<()> {
    if stores.contains(&Store::Kafka) {
        cfg.kafka.check_replication()?;
    }
    tokio::try_join!(
        step(cfg, timeout, stores, Store::Postgres),
        step(cfg, timeout, stores, Store::Kafka),
        step(cfg, timeout, stores, Store::Cassandra),
        step(cfg, timeout, stores, Store::Objects),
    )?;
    if stores.len() == ALL.len() {
        println!(
            "migrate: postgres, kafka topic '{}' ({} partitions), cassandra keyspace '{}' and bucket '{}' are ready",
            cfg.kafka.topic, cfg.kafka.partitions, cfg.cassandra.keyspace, cfg.objects.bucket
        );
    }
    Ok(())
}

/// One store's step, if `stores` has it.
async fn step(
    cfg: &AdminConfig,
    timeout: Duration,
    stores: &[Store],
    store: Store,
) -> anyhow::Result<()> {
    if !stores.contains(&store) {
        return Ok(());
    }
    match store {
        Store::Postgres => {
            retry("postgres", timeout, || async {
                let pool =
                    chat_store::pg::connect(&cfg.postgres, chat_store::pg::Planning::Auto).await?;
                chat_store::pg::migrator().run(&pool).await?;
                anyhow::Ok(())
            })
            .await
        }
        Store::Kafka => {
            retry("kafka", timeout, || async {
                chat_store::bus::create_topic(&cfg.kafka).await?;
                anyhow::Ok(())
            })
            .await
        }
        Store::Cassandra => {
            retry("cassandra", timeout, || async {
                let session = chat_store::cql::connect(&cfg.cassandra, false).await?;
                chat_store::cql::apply_schema(&session, &cfg.cassandra).await?;
                // Check that the statements the services prepare are valid against the schema.
                // (The id index's pool is not used by preparing.)
                let index = chat_store::pg::connect_lazy(&cfg.postgres)?;
                chat_store::cql::MessageStore::connect(&cfg.cassandra, index).await?;
                anyhow::Ok(())
            })
            .await
        }
        Store::Objects => {
            // Bad settings (keys, names) fail at once instead of being retried until the timeout.
            let objects = chat_store::objects::Objects::new(&cfg.objects)?;
            retry("object store", timeout, || async {
                objects.ensure_bucket().await?;
                anyhow::Ok(())
            })
            .await
        }
    }
}

/// Retry `f` until it succeeds or `timeout` has passed: exponential backoff from 250 ms to 5 s
/// with jitter, so several migrators started together do not knock in step.
async fn retry<F, Fut>(what: &str, timeout: Duration, f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let start = Instant::now();
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .with_total_delay(Some(timeout))
        .without_max_times();
    f.retry(backoff)
        // The attempts count too (a connection attempt can take seconds): no retry once the
        // time is up.
        .when(|_| start.elapsed() < timeout)
        .notify(|e: &anyhow::Error, wait: Duration| {
            tracing::info!(what, error = %e, ?wait, "not ready yet, retrying");
        })
        .await
        .with_context(|| format!("{what}: gave up after {:.0?}", start.elapsed()))?;
    println!(
        "migrate: {what} done in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
