//! Pushing a batch's events to the gateways of their recipients: one presence lookup for all
//! recipients (one pipelined Redis round trip), then one request per gateway, all concurrent,
//! each with a time limit, so an unreachable gateway holds up nobody else.

use crate::process::Outgoing;
use chat_store::presence::Presence;
use chat_types::UserId;
use chat_types::internal::{DELIVER_PATH, DeliveryBatch, DeliveryGroup, INTERNAL_TOKEN_HEADER};
use secrecy::{ExposeSecret, SecretString};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub struct Fanout {
    presence: Presence,
    http: reqwest::Client,
    token: SecretString,
}

impl Fanout {
    pub fn new(presence: Presence, token: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(500))
            .pool_max_idle_per_host(8)
            .build()?;
        Ok(Fanout {
            presence,
            http,
            token,
        })
    }

    pub async fn push(&self, outgoing: &[Outgoing]) {
        if outgoing.is_empty() {
            return;
        }
        let mut users: Vec<UserId> = outgoing
            .iter()
            .flat_map(|o| o.recipients.iter().copied())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        users.sort_unstable();
        let gateways = match self.presence.gateways_of(&users).await {
            Ok(g) => g,
            Err(e) => {
                // Stored already; connected clients fill the gap when the next message arrives.
                metrics::counter!("chat_presence_errors_total").increment(1);
                tracing::warn!(error = %e, "presence lookup failed; skipping live push of this batch");
                return;
            }
        };
        let where_is: HashMap<UserId, &Vec<String>> = users
            .iter()
            .copied()
            .zip(gateways.iter())
            .filter(|(_, g)| !g.is_empty())
            .collect();
        if where_is.is_empty() {
            return;
        }

        // Per gateway, groups in batch order. Consecutive events with the same recipients (one
        // channel's messages, the same `Arc` from the processor) extend the gateway's last group
        // instead of repeating the recipient list: in a 5,000-member channel that list is ~95 KB
        // per gateway, the message ~0.3 KB. Only adjacent events merge, so every recipient still
        // sees events in partition order (a `Left` never overtakes the messages before it).
        let mut batches: HashMap<&str, Vec<DeliveryGroup>> = HashMap::new();
        let mut run: Option<(&Arc<Vec<UserId>>, Vec<&str>)> = None;
        for o in outgoing {
            if let Some((recipients, gateways)) = &run
                && Arc::ptr_eq(recipients, &o.recipients)
            {
                for g in gateways {
                    if let Some(group) = batches.get_mut(g).and_then(|v| v.last_mut()) {
                        group.events.push(o.event.clone());
                    }
                }
                continue;
            }
            let mut per_gateway: HashMap<&str, Vec<UserId>> = HashMap::new();
            for u in o.recipients.iter() {
                if let Some(gws) = where_is.get(u) {
                    for g in gws.iter() {
                        per_gateway.entry(g.as_str()).or_default().push(*u);
                    }
                }
            }
            let gateways: Vec<&str> = per_gateway.keys().copied().collect();
            for (g, recipients) in per_gateway {
                batches.entry(g).or_default().push(DeliveryGroup {
                    recipients,
                    events: vec![o.event.clone()],
                });
            }
            run = Some((&o.recipients, gateways));
        }

        let pushes = batches.into_iter().map(|(gateway, groups)| async move {
            let n: usize = groups.iter().map(|g| g.events.len()).sum();
            let url = format!("{gateway}{DELIVER_PATH}");
            let res = self
                .http
                .post(&url)
                .header(INTERNAL_TOKEN_HEADER, self.token.expose_secret())
                .json(&DeliveryBatch { groups })
                .send()
                .await
                .and_then(|r| r.error_for_status());
            match res {
                Ok(_) => metrics::counter!("chat_pushes_total", "result" => "ok").increment(1),
                Err(e) => {
                    metrics::counter!("chat_pushes_total", "result" => "error").increment(1);
                    tracing::warn!(%gateway, events = n, error = %e, "push to gateway failed");
                }
            }
        });
        futures::future::join_all(pushes).await;
    }
}
