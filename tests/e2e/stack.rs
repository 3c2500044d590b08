//! How the native stack runs its servers, where that is what keeps the machine's cores for the
//! work (docs/benchmarks.md, issue 14, eighth step).

use chat_e2e::stack_dir;

/// deploy/stack.sh's default (`CHAT_CASSANDRA_TIMER_SLACK_NS`, deploy/lib/common.sh).
const DEFAULT_SLACK_NS: u64 = 250_000;

/// Cassandra's idle request threads wait for work in 10 µs naps; with Linux's default timer
/// slack (50 µs) two of them woke ~8,600 times a second each at 50 msg/s and Cassandra took
/// 27-31 % of a core on the 2-core machine, 10 % with the slack the stack sets. The slack must
/// reach every thread of the JVM (inherited from the process the stack execs, kept across
/// exec), including those started after the node is up.
#[test]
fn every_thread_of_the_stacks_cassandra_naps_with_the_stacks_timer_slack() -> anyhow::Result<()> {
    let want: u64 = match std::env::var("CHAT_CASSANDRA_TIMER_SLACK_NS") {
        Ok(v) => v.parse()?,
        Err(_) => DEFAULT_SLACK_NS,
    };
    let pid_file = format!("{}/run/pids/cassandra.pid", stack_dir());
    let pid = std::fs::read_to_string(&pid_file)
        .map_err(|e| anyhow::anyhow!("{pid_file}: {e} (is the native stack up?)"))?;
    let pid = pid.trim();
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let tid = task?.file_name();
        let tid = tid.to_string_lossy();
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
        threads += 1;
    }
    // A JVM with Cassandra's pools runs dozens of threads; a handful would mean the pid is not it.
    anyhow::ensure!(threads > 20, "only {threads} threads under pid {pid}");
    Ok(())
}
