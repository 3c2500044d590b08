//! `fanout`: one big channel, fan-out deliveries per second through nginx.

use super::TrafficOpts;
use super::shared::{Setup, Steady, run_steady, steps_of, token_life};
use crate::Common;
use crate::traffic::ConnPlan;
use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub traffic: TrafficOpts,
    /// Members of the channel (one connection each, through nginx).
    #[arg(long, default_value_t = 5000)]
    pub members: usize,
    /// How many of them send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
}

pub async fn fanout(a: FanoutArgs) -> anyhow::Result<bool> {
    let c = &a.common;
    let s = Setup::new(c)?;
    let steps = steps_of(&a.traffic, &[10.0, 20.0, 50.0, 100.0]);
    let users = s.users(a.members, token_life(&steps)).await?;
    let name = format!("fanout-{}", a.members);
    let layout = s.layout(&name, &users, &[(0..a.members).collect()]).await?;
    let conns = (0..a.members)
        .map(|i| ConnPlan {
            token: users[i].access_token.clone(),
            channels: vec![0],
            send_to: if i < a.senders { vec![0] } else { vec![] },
        })
        .collect();
    let run = Steady {
        name: "fanout",
        header: format!(
            "fanout: 1 channel x {} members ({} senders), connections through nginx",
            a.members, a.senders
        ),
        channels: vec![layout.channels[0].id],
        conns,
        steps,
        typing_probe: None,
    };
    run_steady(&s, c, &a.traffic, run, |r| {
        serde_json::json!({
            "members": a.members, "senders": a.senders,
            "target_deliveries_per_s": r.steps.iter().map(|s| s.target_rate * a.members as f64).collect::<Vec<_>>(),
        })
    })
    .await
}
