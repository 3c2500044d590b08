//! `groups`: many small channels (10 members) with steady traffic, at one or more send rates.

use super::TrafficOpts;
use super::shared::{Setup, Steady, run_steady, steps_of, token_life};
use super::typing_probe::ProbePlan;
use crate::Common;
use crate::traffic::ConnPlan;
use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: TrafficOpts,
    /// Number of channels.
    #[arg(long, default_value_t = 500)]
    pub channels: usize,
    /// Members per channel (each member is one user with one connection, and sends).
    #[arg(long, default_value_t = 10)]
    pub members: usize,
    /// Measure typing latency beside the traffic: this many extra pairs of users, each pair in
    /// a channel of its own, take turns announcing `typing` (see `typing_probe.rs`).
    #[arg(long, default_value_t = 0)]
    pub typing_probe: usize,
}

pub async fn groups(a: GroupsArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let s = Setup::new(c)?;
    let steps = steps_of(&a.traffic, &[50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]);
    let n = a.channels * a.members;
    let probe_users = 2 * a.typing_probe;
    let users = s.users(n + probe_users, token_life(&steps)).await?;
    let members: Vec<Vec<usize>> = (0..a.channels)
        .map(|k| (k * a.members..(k + 1) * a.members).collect())
        .collect();
    let name = format!("groups-{}x{}", a.channels, a.members);
    let layout = s.layout(&name, &users[..n], &members).await?;
    let typing_probe = if a.typing_probe > 0 {
        let pairs: Vec<Vec<usize>> = (0..a.typing_probe)
            .map(|k| vec![n + 2 * k, n + 2 * k + 1])
            .collect();
        let probe = s
            .layout(&format!("typing-probe-{}", a.typing_probe), &users, &pairs)
            .await?;
        let (ws_url, connect_addr) = super::shared::ws_url(&c.base_url);
        Some(ProbePlan {
            pairs: probe
                .channels
                .iter()
                .zip(&pairs)
                .map(|(ch, p)| {
                    let token = |i: usize| users[i].access_token.clone();
                    (token(p[0]), token(p[1]), ch.id)
                })
                .collect(),
            ws_url,
            connect_addr,
        })
    } else {
        None
    };
    let conns = (0..n)
        .map(|i| {
            let ch = (i / a.members) as u32;
            ConnPlan {
                token: users[i].access_token.clone(),
                channels: vec![ch],
                send_to: vec![ch],
            }
        })
        .collect();
    let run = Steady {
        name: "groups",
        header: format!(
            "groups: {} channels x {} members, {} connections through nginx",
            a.channels, a.members, n
        ),
        channels: layout.channels.iter().map(|c| c.id).collect(),
        conns,
        steps,
        typing_probe,
    };
    run_steady(&s, c, &a.traffic, run, |_| {
        serde_json::json!({
            "channels": a.channels, "members": a.members, "connections": n,
            "typing_probe_pairs": a.typing_probe,
        })
    })
    .await
}
