//! How the native stack runs and stops its servers, where that decides whether the machine's
//! cores go to the work (docs/benchmarks.md, issue 14, eighth step; tuning log 24) and whether a
//! server can be started again at once, and what a stored message costs Cassandra. The tests
//! take turns: one restarts Cassandra, the others read its threads, its memtables, its trace of
//! a read, Kafka's heap and the gateways' runtimes.

use chat_e2e::{
    Restart, api, cassandra, connect, metric, register, repo_root, stack, stack_dir, unique,
    wait_until_gateways_read_cassandra, wait_until_ready,
};
use std::time::Duration;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn cassandra_pid() -> anyhow::Result<String> {
    pid_of("cassandra")
}

fn pid_of(name: &str) -> anyhow::Result<String> {
    let pid_file = format!("{}/run/pids/{name}.pid", stack_dir());
    let pid = std::fs::read_to_string(&pid_file)
        .map_err(|e| anyhow::anyhow!("{pid_file}: {e} (is the native stack up?)"))?;
    Ok(pid.trim().to_string())
}

/// The JVM `pid`'s objects by class (`jcmd … GC.class_histogram`, with `-all` if `all`: then
/// unreachable objects count too, and the JVM is not made to collect first): class → (instances,
/// bytes).
async fn class_histogram(
    pid: &str,
    all: bool,
) -> anyhow::Result<std::collections::HashMap<String, (u64, u64)>> {
    let mut args = vec![pid, "GC.class_histogram"];
    if all {
        args.push("-all");
    }
    let out = tokio::process::Command::new("jcmd")
        .args(&args)
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("jcmd (the JDK's; scripts/test-all.sh installs it): {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "jcmd {pid} GC.class_histogram: {out:?}"
    );
    let mut classes = std::collections::HashMap::new();
    // A row is "<rank>: <instances> <bytes> <class> [(module)]".
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split_whitespace().skip(1);
        let (Some(n), Some(bytes), Some(class)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Ok(n), Ok(bytes)) = (n.parse::<u64>(), bytes.parse::<u64>()) else {
            continue;
        };
        let e = classes.entry(class.to_string()).or_insert((0, 0));
        e.0 += n;
        e.1 += bytes;
    }
    Ok(classes)
}

/// The slack the stack gives Cassandra: deploy/lib/common.sh's `CASSANDRA_TIMER_SLACK_NS` (its
/// default, or `CHAT_CASSANDRA_TIMER_SLACK_NS` from this environment, as for the stack).
fn stack_timer_slack_ns() -> anyhow::Result<u64> {
    let common = repo_root().join("deploy/lib/common.sh");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"source "$0" && echo "$CASSANDRA_TIMER_SLACK_NS""#)
        .arg(&common)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "sourcing {}: {out:?}",
        common.display()
    );
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// The threads of process `pid` (none once it is gone).
fn threads_of(pid: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|t| Some(t.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Cassandra's idle request threads wait for work in 10 µs naps; with Linux's default timer
/// slack (50 µs) two of them woke ~8,600 times a second each at 50 msg/s and Cassandra took
/// 27-31 % of a core on the 2-core machine, 10 % with the slack the stack sets. The slack must
/// reach every thread of the JVM (inherited from the process the stack execs, kept across
/// exec), including those started after the node is up.
#[tokio::test]
async fn every_thread_of_the_stacks_cassandra_naps_with_the_stacks_timer_slack()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let want = stack_timer_slack_ns()?;
    let pid = cassandra_pid()?;
    let mut checked = 0;
    for tid in threads_of(&pid) {
        // A thread's own file is /proc/<tid>/timerslack_ns (the task folder has none).
        let Ok(slack) = std::fs::read_to_string(format!("/proc/{tid}/timerslack_ns")) else {
            continue; // the thread ended meanwhile
        };
        let comm =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
        anyhow::ensure!(
            slack.trim().parse::<u64>()? == want,
            "Cassandra's thread {tid} ({}) has timer slack {} ns, not {want}",
            comm.trim(),
            slack.trim()
        );
        checked += 1;
    }
    // A JVM with Cassandra's pools runs dozens of threads; a handful would mean the pid is not it.
    anyhow::ensure!(checked > 20, "only {checked} threads under pid {pid}");
    Ok(())
}

/// `deploy/stack.sh kill` returns once the server is gone, so `start` right after it finds the
/// ports free. A JVM's main thread ends before its last threads (the process is then a zombie
/// that is still multi-threaded, `ps` stat `Zl`, and still holds its ports); taking that for the
/// end made a `start` at once fail with "127.0.0.1:17199 is already taken".
#[tokio::test]
async fn a_stopped_cassandra_is_gone_when_kill_returns_and_starts_again_at_once()
-> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let restart = Restart::guard(&["cassandra"]);
    let old = cassandra_pid()?;
    stack(&["kill", "cassandra"]).await?;
    let left = threads_of(&old);
    anyhow::ensure!(
        left.len() <= 1,
        "kill returned while {} threads of Cassandra (pid {old}) still ran",
        left.len()
    );
    restart.start().await?;
    anyhow::ensure!(
        cassandra_pid()? != old,
        "the pid file still names pid {old}"
    );
    // The tests after this one find the services that read Cassandra ready again (their
    // drivers reconnect on their own; `start` waits for Cassandra's port only): the API and
    // the message servers say so on `/readyz`, the gateways by answering a `resume`.
    let ops = [9100, 9201, 9202].map(|port| format!("http://127.0.0.1:{port}/readyz"));
    wait_until_ready(&ops, Duration::from_secs(60)).await?;
    wait_until_gateways_read_cassandra(&["gateway-1", "gateway-2"], Duration::from_secs(60)).await
}

/// The stack's gateways share two cores with everything else; with a tokio worker per core
/// each, the second worker mostly woke up to steal work: groups at 2,400 msg/s had p99 101-288
/// ms and 56-58 ms with one worker (docs/benchmarks.md, tuning log 24). The setting is
/// `CHAT__GATEWAY__WORKER_THREADS` in deploy/native/topology.conf.
#[tokio::test]
async fn the_stacks_gateways_each_run_one_tokio_worker() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    for (gateway, ops_port) in [("gateway-1", 9101), ("gateway-2", 9102)] {
        let workers = metric(ops_port, "chat_runtime_workers").await?;
        anyhow::ensure!(
            workers == 1.0,
            "{gateway} runs {workers} tokio workers, not 1"
        );
    }
    Ok(())
}

/// Cassandra's young collections copy every Java object a live memtable holds; with the skip
/// list (Cassandra's default) that is a few objects per row written since the last flush, and
/// at 1,600 msg/s in groups its pauses of 87-155 ms put the end-to-end p99 at 56-84 ms. The
/// stack's templates make every table's memtable a trie (a few large buffers): pauses of 58-73
/// ms at most, p99 33-41 ms (docs/benchmarks.md, issue 14, eleventh step). What runs is read
/// from the JVM itself: the memtables it has made, by class.
#[tokio::test]
async fn the_stacks_cassandra_keeps_its_memtables_in_tries() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let pid = cassandra_pid()?;
    let histogram = class_histogram(&pid, true).await?;
    let instances = |class: &str| histogram.get(class).map_or(0, |&(n, _)| n);
    let tries = instances("org.apache.cassandra.db.memtable.TrieMemtable");
    let skip_lists = instances("org.apache.cassandra.db.memtable.SkipListMemtable");
    anyhow::ensure!(
        tries > 0 && skip_lists == 0,
        "Cassandra (pid {pid}) holds {tries} trie and {skip_lists} skip-list memtables"
    );
    Ok(())
}

/// Kafka's heap holds what a broker needs, not a 128 MB buffer it never fills: the log
/// cleaner's dedupe buffer (`log.cleaner.dedupe.buffer.size`) is allocated on the heap at
/// start, and at Kafka's default it took 128 of the broker's 512 MB. What was left live (174 MB)
/// was above the threshold for concurrent marking of G1 (the broker's collector then), so the
/// broker ran a marking cycle with its remark pause every ~12 s and mixed collections that
/// freed nothing, on the cores the sends' acks wait for (docs/benchmarks.md, issue 14,
/// sixteenth step). The stack's templates give it 16 MB (the one compacted topic,
/// `__consumer_offsets`, has a few thousand keys). Read from the JVM: the byte arrays still
/// live after a full collection.
#[tokio::test]
async fn the_stacks_kafka_holds_no_idle_cleaner_buffer() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let pid = pid_of("kafka")?;
    let live = class_histogram(&pid, false).await?;
    let (arrays, bytes) = live.get("[B").copied().unwrap_or_default();
    println!(
        "Kafka (pid {pid}): {arrays} byte arrays live, {} MB",
        bytes >> 20
    );
    anyhow::ensure!(
        bytes < 64 << 20,
        "Kafka (pid {pid}) holds {} MB of live byte arrays (the default cleaner buffer is 128 MB)",
        bytes >> 20
    );
    Ok(())
}

/// What Cassandra's trace of reading `query` (one row, by its key) says it read: "Read <n> live
/// rows and <m> tombstone cells".
async fn traced_read(
    session: &scylla::client::session::Session,
    query: &str,
    key: (uuid::Uuid, i64, i64),
) -> anyhow::Result<Vec<String>> {
    let mut read = scylla::statement::Statement::new(query);
    read.set_tracing(true);
    let result = session.query_unpaged(read, key).await?;
    let trace = result
        .tracing_id()
        .ok_or_else(|| anyhow::anyhow!("Cassandra gave the traced read no trace id"))?;
    let info = session.get_tracing_info(&trace).await?;
    Ok(info
        .events
        .into_iter()
        .filter_map(|e| e.activity)
        .filter(|a| a.contains("tombstone cells"))
        .collect())
}

/// A message stored without a reply (or mentions, or files), and a reaction's event (which has
/// no body), write no tombstone cells: a null bound to a column is one, and every row would
/// carry it through the memtable, the SSTables, compaction and every read of it. Cassandra's
/// own trace of a read of each stored row counts them.
#[tokio::test]
async fn stored_messages_and_events_carry_no_tombstones() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let api = api();
    let a = register(&api, "tomb-").await?;
    let channel = api
        .create_channel(&a.access_token, &unique("tomb-"), None)
        .await?;
    let mut ws = connect(&a.access_token).await?;
    let cmid = uuid::Uuid::new_v4().to_string();
    let acked = ws.send_acked(channel.id, &cmid, "no reply").await?;
    // Delivered live means stored: the message server pushes after Cassandra took it.
    let own = ws.next_message().await?;
    anyhow::ensure!(own.id == acked.id, "delivered {own:?}, acked {acked:?}");
    let seq = own
        .seq
        .ok_or_else(|| anyhow::anyhow!("a delivered message without a seq"))?;
    ws.change_acked(&chat_types::ws::ClientFrame::React {
        channel_id: channel.id,
        message_id: own.id,
        client_event_id: "tomb-react".into(),
        emoji: "👍".into(),
    })
    .await?;
    let event = ws.next_event().await?;
    let session = cassandra().await?;
    let key = |seq: i64| (channel.id.0, chat_store::cql::bucket_of(seq), seq);
    let message = traced_read(
        &session,
        "SELECT * FROM messages WHERE channel_id = ? AND bucket = ? AND seq = ?",
        key(seq),
    )
    .await?;
    let reaction = traced_read(
        &session,
        "SELECT * FROM channel_events WHERE channel_id = ? AND bucket = ? AND seq = ?",
        key(event.seq),
    )
    .await?;
    for (what, counted) in [("message", message), ("reaction", reaction)] {
        anyhow::ensure!(
            counted
                .iter()
                .any(|a| a.contains("1 live rows and 0 tombstone cells")),
            "the stored {what}'s read: {counted:?}"
        );
    }
    Ok(())
}

/// Kafka's collector does not stop the broker for its young generation. Under G1 the broker
/// stood still ~19 ms every ~2 s at 1,600 msg/s, and every send arriving meanwhile waited for
/// its ack: a send's ack p99 there was 120-186 ms with G1 and 68-123 ms with ZGC, whose pauses
/// stay under a millisecond (docs/benchmarks.md, issue 14, nineteenth step). Read from the
/// running broker's JVM.
#[tokio::test]
async fn the_stacks_kafka_collects_without_stopping_for_young_objects() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let pid = pid_of("kafka")?;
    let out = tokio::process::Command::new("jcmd")
        .args([pid.as_str(), "VM.flags"])
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("jcmd (the JDK's; scripts/test-all.sh installs it): {e}"))?;
    anyhow::ensure!(out.status.success(), "jcmd {pid} VM.flags: {out:?}");
    let flags = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        flags.split_whitespace().any(|f| f == "-XX:+UseZGC"),
        "Kafka (pid {pid}) does not run ZGC: {flags}"
    );
    Ok(())
}
