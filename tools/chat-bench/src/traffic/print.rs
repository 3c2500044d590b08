//! A traffic result printed as a table.

use super::{StepResult, TrafficResult};
use crate::stats;

/// Print a traffic result as a table.
pub fn print(r: &TrafficResult) {
    let c = &r.connections;
    if r.machine_busy_before_percent > 0.0 {
        println!(
            "machine busy before the run: {:.0}% of all cores",
            r.machine_busy_before_percent
        );
    }
    println!(
        "connections: {} of {} open ({} failed) over {} worker(s){} in {:.1} s{}",
        c.connected,
        c.planned,
        c.failed,
        c.workers,
        if c.worker_processes {
            " (child processes)"
        } else {
            ""
        },
        c.connect_seconds,
        c.first_error
            .as_ref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    );
    print_steps(&r.steps);
    let v = &r.verification;
    println!(
        "deliveries: expected {} delivered {} | lost {} late {} duplicated {} reordered {} | unacked {} | drain {} in {:.1} s | reconnects {} resent {} | errors {:?} | closes {:?}",
        v.expected,
        v.delivered,
        v.lost,
        v.late,
        v.duplicated,
        v.reordered,
        v.unacked,
        if v.drain_complete {
            "complete"
        } else {
            "INCOMPLETE"
        },
        v.drain_seconds,
        v.reconnects,
        v.resent,
        v.errors,
        v.closes
    );
    let m = &v.mixed;
    if m.changes_sent + m.marks_sent > 0 {
        println!(
            "mixed: changes sent {} acked {} | events delivered {} | read marks sent {}",
            m.changes_sent, m.changes_acked, m.events_delivered, m.marks_sent
        );
    }
    // Each hop as "mean / p99" in ms, over all steps (the JSON has them per step too).
    for (svc, d) in &r.server_counters {
        if let (Some(ms), Some(n)) = (
            d.get("derived_mean_batch_ms"),
            d.get("derived_mean_batch_records"),
        ) {
            println!(
                "{svc}: {} batches, mean {n:.1} records in {ms:.1} ms (p99 {:.1}); phases mean / p99 ms: {}; records waited {} ms before their batch",
                d.get("chat_batch_seconds_count").copied().unwrap_or(0.0),
                d.get("derived_p99_batch_ms").copied().unwrap_or(f64::NAN),
                phase_stats(d, "phase_ms"),
                mean_p99(d, "record_wait_ms"),
            );
        }
        let sends = phase_stats(d, "send_ms");
        if !sends.is_empty() {
            println!("{svc}: send phases mean / p99 ms: {sends}");
        }
    }
    println!("end-to-end (all steps): {}", r.total_e2e.line());
    println!("ack (all steps):        {}", r.total_ack.line());
}

/// The steps as a table: rates, latency percentiles, the busiest processes.
fn print_steps(steps: &[StepResult]) {
    println!(
        "{:>9} {:>6} {:>9} {:>9} {:>11} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9}  busiest processes",
        "rate",
        "secs",
        "sent/s",
        "acked/s",
        "deliv/s",
        "e2e p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "ack p99"
    );
    for s in steps {
        let busiest = s
            .cpu
            .as_ref()
            .map(|c| {
                c.processes
                    .iter()
                    .take(4)
                    .map(|p| format!("{} {:.0}%", p.process, p.core_percent))
                    .collect::<Vec<_>>()
                    .join(", ")
                    + &format!(
                        "; other {:.0}% (machine {:.0}% of {} cores)",
                        c.other_core_percent, c.machine_busy_percent, c.cores
                    )
            })
            .unwrap_or_default();
        println!(
            "{:>9} {:>6.1} {:>9.0} {:>9.0} {:>11.0} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9}  {}{}",
            s.target_rate,
            s.secs,
            s.sent_per_s,
            s.acked_per_s,
            s.deliveries_per_s,
            stats::fmt_ms(s.e2e.p50_ms),
            stats::fmt_ms(s.e2e.p90_ms),
            stats::fmt_ms(s.e2e.p99_ms),
            stats::fmt_ms(s.e2e.p999_ms),
            stats::fmt_ms(s.e2e.max_ms),
            stats::fmt_ms(s.ack.p99_ms),
            busiest,
            if s.saturated { "  SATURATED" } else { "" }
        );
    }
}

/// "a 1.0, b 2.5": the means derived per `phase` label under `prefix` (see `ops::counter_deltas`).
fn phase_stats(d: &std::collections::BTreeMap<String, f64>, hop: &str) -> String {
    let prefix = format!("derived_mean_{hop}{{phase=\"");
    let phases: Vec<String> = d
        .keys()
        .filter_map(|k| {
            let label = k.strip_prefix(&prefix)?.trim_end_matches("\"}");
            Some(format!(
                "{label} {}",
                mean_p99(d, &format!("{hop}{{phase=\"{label}\"}}"))
            ))
        })
        .collect();
    phases.join(", ")
}

/// "mean / p99" of a hop's derived values.
fn mean_p99(d: &std::collections::BTreeMap<String, f64>, hop: &str) -> String {
    let get = |stat: &str| {
        d.get(&format!("derived_{stat}_{hop}"))
            .copied()
            .unwrap_or(f64::NAN)
    };
    format!("{:.1} / {:.1}", get("mean"), get("p99"))
}
