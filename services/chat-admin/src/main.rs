//! `chat-admin migrate`: bring the stores and the broker to the schema this build expects.
//! Used by the native stack (`deploy/stack.sh up`) and by docker compose's `migrate` service.
//! Each step waits for its server (up to `--timeout` seconds, default 180) so it can run while
//! the servers are still starting.

use anyhow::Context;
use chat_common::config::{CassandraConfig, KafkaConfig, PostgresConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct AdminConfig {
    postgres: PostgresConfig,
    kafka: KafkaConfig,
    cassandra: CassandraConfig,
    telemetry: TelemetryConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let timeout = args
        .iter()
        .position(|a| a == "--timeout")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse::<u64>().context("--timeout takes seconds"))
        .transpose()?
        .unwrap_or(180);
    let cfg: AdminConfig = chat_common::config::load()?;
    chat_common::telemetry::init("chat-admin", &cfg.telemetry);
    match args.first().map(String::as_str) {
        Some("migrate") => migrate(&cfg, Duration::from_secs(timeout)).await,
        _ => {
            eprintln!("usage: chat-admin migrate [--timeout SECONDS]");
            std::process::exit(2);
        }
    }
}

async fn migrate(cfg: &AdminConfig, timeout: Duration) -> anyhow::Result<()> {
    let pg = retry("postgres", timeout, || async {
        let pool = chat_store::pg::connect(&cfg.postgres).await?;
        chat_store::pg::MIGRATOR.run(&pool).await?;
        anyhow::Ok(())
    });
    let kafka = retry("kafka", timeout, || async {
        chat_store::bus::create_topic(&cfg.kafka, 1).await?;
        anyhow::Ok(())
    });
    let cql = retry("cassandra", timeout, || async {
        let session = chat_store::cql::connect(&cfg.cassandra, false).await?;
        chat_store::cql::apply_schema(&session, &cfg.cassandra).await?;
        // Check that the statements the services prepare are valid against the schema.
        chat_store::cql::MessageStore::connect(&cfg.cassandra).await?;
        anyhow::Ok(())
    });
    tokio::try_join!(pg, kafka, cql)?;
    println!(
        "migrate: postgres, kafka topic '{}' ({} partitions) and cassandra keyspace '{}' are ready",
        cfg.kafka.topic, cfg.kafka.partitions, cfg.cassandra.keyspace
    );
    Ok(())
}

async fn retry<F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(()) => {
                println!(
                    "migrate: {what} done in {:.1}s",
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Err(e) if start.elapsed() < timeout => {
                tracing::info!(what, error = %e, "not ready yet, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.context(format!("{what}: gave up after {timeout:?}"))),
        }
    }
}
