//! `baseline`: CPU and memory of the idle stack (no load), for comparison with the scenarios.

use super::shared::envelope;
use crate::Common;
use crate::procs;
use crate::report;
use anyhow::bail;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Args, Clone, Debug)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub common: Common,
    /// Seconds to watch the idle stack.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
}

/// What the stack costs with no load at all (pollers, heartbeats, JVM housekeeping).
pub async fn baseline(a: BaselineArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let pids = procs::stack_pids(&c.stack_dir);
    if pids.is_empty() {
        bail!("no stack processes found under {}", c.stack_dir.display());
    }
    let s0 = procs::cpu_snapshot(&pids);
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    let s1 = procs::cpu_snapshot(&pids);
    let cpu = procs::cpu_between(&s0, &s1, 0, "nothing (no load)");
    let rss: BTreeMap<String, u64> = pids
        .iter()
        .map(|(n, p)| (n.clone(), procs::tree_rss_kib(*p)))
        .collect();
    println!(
        "idle stack over {} s: machine {:.0}% busy of {} cores",
        a.secs, cpu.machine_busy_percent, cpu.cores
    );
    for p in &cpu.processes {
        println!(
            "  {:<18} {:>5.1}% of a core   RSS {:>8} KiB",
            p.process,
            p.core_percent,
            rss.get(&p.process).copied().unwrap_or(0)
        );
    }
    println!("  other              {:>5.1}%", cpu.other_core_percent);
    #[derive(Serialize)]
    struct Baseline {
        cpu: procs::CpuReport,
        rss_kib: BTreeMap<String, u64>,
    }
    let name = c.name.clone().unwrap_or_else(|| "baseline".into());
    let json = report::write_json(
        &c.out_dir,
        &name,
        &envelope(
            "baseline",
            serde_json::json!({"secs": a.secs}),
            &pids,
            &Baseline { cpu, rss_kib: rss },
        ),
    )?;
    println!("results: {}", json.display());
    Ok(true)
}
