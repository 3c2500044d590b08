//! The whole system on replicated clusters (`deploy/stack.sh up --cluster`: three Kafka brokers
//! and three Cassandra nodes, each on a host of its own): a member is killed or cut off from the
//! network in the middle of a stream, and the harness counts lost, duplicated and reordered
//! messages, live and in history (all must be zero, every send acked). Replication factor 3 with
//! 2 of 3 needed (Kafka min.insync.replicas, Cassandra LOCAL_QUORUM) is what lets one member go
//! without the users noticing more than a delay; each test prints how long deliveries were
//! held up. These tests change the shared stack, so they run one at a time and restore every
//! member they stop or cut.

use chat_e2e::harness::Crowd;
use chat_e2e::{stack, stack_dir};
use std::time::Duration;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

const CLIENTS: usize = 12;
const CHANNELS: usize = 6;
const MEMBERS: usize = 4;
/// 10 s of sending, 5 s of it after the fault.
const PER_CHANNEL: usize = 100;
const PAUSE: Duration = Duration::from_millis(100);
/// Long enough for a cut-off member's leaderships and sessions to time out and for every
/// client to resend what was refused meanwhile.
const SETTLE: Duration = Duration::from_secs(120);
/// How long a cut-off member stays cut off: past Kafka's broker session (9 s) and Cassandra's
/// failure detector (~20 s in our measurements), so both clusters act on it.
const CUT_FOR: Duration = Duration::from_secs(25);

/// These tests mean nothing against the single-broker stack: say so instead of passing.
fn require_cluster_mode() -> anyhow::Result<()> {
    let mode = std::fs::read_to_string(format!("{}/run/mode", stack_dir())).unwrap_or_default();
    anyhow::ensure!(
        mode.trim() == "cluster",
        "the stack does not run in cluster mode: start it with deploy/stack.sh up --cluster"
    );
    Ok(())
}

/// A killed member stays down this long before it restarts on its data.
const DOWN_FOR: Duration = Duration::from_secs(10);

/// Stream through the crowd; midway, `fault` (a `deploy/stack.sh` command), and `wait` later,
/// while the stream and its settling go on, `repair`; then judge.
async fn stream_through(
    name: &str,
    fault: &[&str],
    repair: &[&str],
    wait: Duration,
) -> anyhow::Result<()> {
    require_cluster_mode()?;
    let _serial = SERIAL.lock().await;
    let crowd = Crowd::new(CLIENTS, CHANNELS, MEMBERS).await?;
    let repairer = std::sync::Mutex::new(None);
    let sent = crowd
        .stream(PER_CHANNEL, PAUSE, || async {
            stack(fault).await?;
            let repair: Vec<String> = repair.iter().map(|s| s.to_string()).collect();
            *repairer.lock().expect("lock") = Some(tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let args: Vec<&str> = repair.iter().map(String::as_str).collect();
                stack(&args).await
            }));
            Ok(())
        })
        .await?;
    let verdict = crowd.finish(sent, SETTLE).await;
    let handle = repairer.lock().expect("lock").take();
    if let Some(h) = handle {
        h.await??;
    }
    let verdict = verdict?;
    verdict.report_and_check(name)?;
    // A member cut off is a minority: the others carry on. Nothing may wait for it to be back.
    if let (Some(longest), true) = (verdict.after_ack.last(), repair[0] == "heal") {
        anyhow::ensure!(
            *longest < wait,
            "{name}: a delivery waited {longest:?}, as long as the member was cut off"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_kafka_broker_killed_mid_stream_loses_duplicates_and_reorders_nothing()
-> anyhow::Result<()> {
    stream_through(
        "kill -9 kafka-2",
        &["kill", "kafka-2", "-9"],
        &["start", "kafka-2"],
        DOWN_FOR,
    )
    .await
}

#[tokio::test]
async fn a_kafka_broker_cut_off_and_healed_mid_stream_loses_nothing() -> anyhow::Result<()> {
    stream_through(
        "kafka-3 cut off for 25 s",
        &["cut", "kafka-3"],
        &["heal", "kafka-3"],
        CUT_FOR,
    )
    .await
}

#[tokio::test]
async fn a_cassandra_node_killed_mid_stream_loses_duplicates_and_reorders_nothing()
-> anyhow::Result<()> {
    stream_through(
        "kill -9 cassandra-1",
        &["kill", "cassandra-1", "-9"],
        &["start", "cassandra-1"],
        DOWN_FOR,
    )
    .await
}

#[tokio::test]
async fn a_cassandra_node_cut_off_and_healed_mid_stream_loses_nothing() -> anyhow::Result<()> {
    stream_through(
        "cassandra-2 cut off for 25 s",
        &["cut", "cassandra-2"],
        &["heal", "cassandra-2"],
        CUT_FOR,
    )
    .await
}
