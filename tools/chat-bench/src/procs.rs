//! What the processes of the stack (and this tool) cost: CPU time from `/proc/<pid>/stat`
//! (utime + stime + reaped children, summed over each server's process tree), how long its
//! threads waited for a core from `/proc/<pid>/task/<tid>/schedstat`, and resident memory
//! from `/proc/<pid>/status`. The servers' pids come from the native stack's pid files
//! (`deploy/stack.sh status` reads the same files).

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The stack's servers, in the order results list them.
pub const SERVERS: &[&str] = &[
    "nginx",
    "gateway-1",
    "gateway-2",
    "message-server-1",
    "message-server-2",
    "api",
    "notifier",
    "apns",
    "objectstore",
    "kafka",
    "cassandra",
    "redis",
    "postgres",
];

/// Our own process tree (this process and its worker children).
pub const SELF: &str = "chat-bench";

/// Linux reports CPU times in clock ticks of USER_HZ, which is 100 on every Linux ABI in use.
const TICKS_PER_SEC: f64 = 100.0;

pub fn stack_dir() -> PathBuf {
    std::env::var_os("CHAT_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/chat-stack"))
}

pub fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Pids of the stack's servers that are running now (name -> pid).
pub fn stack_pids(stack_dir: &Path) -> BTreeMap<String, u32> {
    let run = stack_dir.join("run");
    let mut out = BTreeMap::new();
    for name in SERVERS {
        let file = if *name == "postgres" {
            run.join("postgres/data/postmaster.pid")
        } else {
            run.join("pids").join(format!("{name}.pid"))
        };
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            out.insert((*name).to_string(), pid);
        }
    }
    out
}

/// One reading of every process's CPU time.
#[derive(Clone, Debug)]
pub struct CpuSnap {
    pub at: Instant,
    /// name -> ticks of the whole process tree.
    pub ticks: BTreeMap<String, u64>,
    /// name -> the tree's live threads' time runnable but not running.
    pub waits: BTreeMap<String, RunQueue>,
    /// Machine-wide (busy, total) ticks from /proc/stat.
    pub machine: (u64, u64),
}

struct ProcStat {
    ppid: u32,
    ticks: u64,
}

fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    // utime stime cutime cstime ...
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some(ProcStat {
        ppid: n(1) as u32,
        ticks: n(11) + n(12) + n(13) + n(14),
    })
}

/// Time a set of threads spent runnable but waiting for a core, and how many times they were
/// put on one (`/proc/<pid>/task/<tid>/schedstat`: run time, wait time, timeslices). Only live
/// threads count: a thread that exits takes its wait with it.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunQueue {
    pub wait_ns: u64,
    pub slices: u64,
}

fn run_queue(pids: &[u32]) -> RunQueue {
    let mut out = RunQueue::default();
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            let mut f = text.split_whitespace().skip(1).map(|v| v.parse::<u64>());
            if let (Some(Ok(wait)), Some(Ok(slices))) = (f.next(), f.next()) {
                out.wait_ns += wait;
                out.slices += slices;
            }
        }
    }
    out
}

fn all_procs() -> HashMap<u32, ProcStat> {
    let mut out = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && let Some(s) = read_stat(pid)
            {
                out.insert(pid, s);
            }
        }
    }
    out
}

/// Every pid in the tree under `root` (itself included).
fn tree(root: u32, procs: &HashMap<u32, ProcStat>) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, s) in procs {
        children.entry(s.ppid).or_default().push(*pid);
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().copied());
        }
        i += 1;
    }
    out
}

fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest times are already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

pub fn cpu_snapshot(roots: &BTreeMap<String, u32>) -> CpuSnap {
    let procs = all_procs();
    let mut ticks = BTreeMap::new();
    let mut waits = BTreeMap::new();
    let trees = roots
        .iter()
        .map(|(name, pid)| (name.clone(), tree(*pid, &procs)))
        .chain([(SELF.to_string(), tree(std::process::id(), &procs))]);
    for (name, pids) in trees {
        let t: u64 = pids
            .iter()
            .filter_map(|p| procs.get(p))
            .map(|s| s.ticks)
            .sum();
        ticks.insert(name.clone(), t);
        waits.insert(name, run_queue(&pids));
    }
    CpuSnap {
        at: Instant::now(),
        ticks,
        waits,
        machine: machine_ticks(),
    }
}

/// CPU used by one process between two snapshots.
#[derive(Clone, Debug, Serialize)]
pub struct CpuUse {
    pub process: String,
    pub cpu_seconds: f64,
    /// Share of one core over the window (100 = one core busy all the time).
    pub core_percent: f64,
    /// CPU milliseconds per 1,000 deliveries (or per 1,000 requests where stated).
    pub ms_per_1000: Option<f64>,
    /// Time its threads were ready to run but waited for a core, as a share of the window
    /// (100 = one thread waiting all the time): what a busy machine adds to each hop.
    pub runq_wait_percent: f64,
    /// The mean of that wait each time one of its threads got a core, microseconds.
    pub runq_wait_per_slice_us: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CpuReport {
    pub window_seconds: f64,
    /// Machine-wide busy share of all cores (100 = every core busy).
    pub machine_busy_percent: f64,
    pub cores: usize,
    /// What `ms_per_1000` counts.
    pub per: String,
    pub units: u64,
    pub processes: Vec<CpuUse>,
    /// Machine CPU time not used by the processes above (other programs on the machine, the
    /// kernel's own threads): a run with much of it was disturbed.
    pub other_cpu_seconds: f64,
    pub other_core_percent: f64,
}

pub fn cpu_between(a: &CpuSnap, b: &CpuSnap, units: u64, per: &str) -> CpuReport {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-6);
    let mut processes = Vec::new();
    for (name, t1) in &b.ticks {
        let Some(t0) = a.ticks.get(name) else {
            continue;
        };
        let cpu = t1.saturating_sub(*t0) as f64 / TICKS_PER_SEC;
        let (w0, w1) = (
            a.waits.get(name).copied().unwrap_or_default(),
            b.waits.get(name).copied().unwrap_or_default(),
        );
        let (wait_ns, slices) = (
            w1.wait_ns.saturating_sub(w0.wait_ns),
            w1.slices.saturating_sub(w0.slices),
        );
        processes.push(CpuUse {
            process: name.clone(),
            cpu_seconds: cpu,
            core_percent: 100.0 * cpu / secs,
            ms_per_1000: (units > 0).then(|| 1000.0 * cpu * 1000.0 / units as f64),
            runq_wait_percent: 100.0 * wait_ns as f64 / 1e9 / secs,
            runq_wait_per_slice_us: (slices > 0).then(|| wait_ns as f64 / 1e3 / slices as f64),
        });
    }
    processes.sort_by(|x, y| y.cpu_seconds.total_cmp(&x.cpu_seconds));
    let busy = b.machine.0.saturating_sub(a.machine.0) as f64;
    let total = b.machine.1.saturating_sub(a.machine.1) as f64;
    let ours: f64 = processes.iter().map(|p| p.cpu_seconds).sum();
    let other = (busy / TICKS_PER_SEC - ours).max(0.0);
    CpuReport {
        window_seconds: secs,
        machine_busy_percent: if total > 0.0 {
            100.0 * busy / total
        } else {
            0.0
        },
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        per: per.to_string(),
        units,
        processes,
        other_cpu_seconds: other,
        other_core_percent: 100.0 * other / secs,
    }
}

/// Share of all cores busy over `window` (to tell whether something else loads the machine).
pub async fn machine_busy(window: std::time::Duration) -> f64 {
    let a = machine_ticks();
    tokio::time::sleep(window).await;
    let b = machine_ticks();
    let total = b.1.saturating_sub(a.1) as f64;
    if total > 0.0 {
        100.0 * b.0.saturating_sub(a.0) as f64 / total
    } else {
        0.0
    }
}

/// Resident memory (VmRSS) of one process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Resident memory of a whole process tree (nginx master + workers, postgres backends), KiB.
pub fn tree_rss_kib(root: u32) -> u64 {
    let procs = all_procs();
    tree(root, &procs).iter().filter_map(|p| rss_kib(*p)).sum()
}

/// The machine, for the results.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu_model: String,
    pub kernel: String,
    pub os: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("PRETTY_NAME="))
        .map(|l| {
            l.trim_start_matches("PRETTY_NAME=")
                .trim_matches('"')
                .to_string()
        })
        .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: mem_kib / 1024.0 / 1024.0,
        cpu_model,
        kernel,
        os,
    }
}

/// Raise this process's open-file limit to its hard limit; returns the limit now in force.
pub fn raise_nofile() -> u64 {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) => {
            if soft < hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_measured() {
        let s = cpu_snapshot(&BTreeMap::new());
        assert!(s.ticks.contains_key(SELF));
        assert!(s.waits[SELF].slices > 0, "this thread has run");
        assert!(s.machine.1 > 0);
        assert!(rss_kib(std::process::id()).unwrap_or(0) > 0);
    }
}
