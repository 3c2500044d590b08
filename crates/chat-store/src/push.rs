//! Pushing events to the gateways of their recipients (`POST /internal/v1/deliver`): one
//! presence lookup for the batch (one pipelined Redis round trip), then one request per
//! gateway, all concurrent, each with a time limit, so an unreachable gateway holds up nobody
//! else. Message servers push a batch's messages with [`Fanout::push`]: a push that fails is
//! retried in the background a few times within [`RETRY_WITHIN`], so a gateway that failed for
//! a moment still gets every message of a channel that then goes quiet; late copies are harmless
//! (a gateway drops what a connection already has, by position). Gateways push ephemeral
//! signals (typing, presence) with [`Fanout::push_ephemeral`]: once, no retry (a late typing
//! indicator is worse than none).
//!
//! Routing: the recipients of a small channel's events are looked up one by one (their
//! gateways only are pushed to). A big channel's events, [`BROADCAST_PER_GATEWAY`] recipients
//! or more per listed gateway, go to every listed gateway with the whole member list, and each
//! gateway picks its own connections: no lookup per member. That is never fewer gateways than
//! the lookups would find, since a gateway is listed as long as any entry of its is current
//! ([`crate::presence`]).

use crate::presence::{Presence, Routes};
use bytes::Bytes;
use chat_types::internal::{
    DELIVER_PATH, DeliveryGroup, Event, INTERNAL_TOKEN_HEADER, ListDigest, ListRef,
};
use chat_types::{ChannelId, UserId};
use lru::LruCache;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// Retries of a failed push are spread over about this long (with jitter), then given up: a
/// gateway still failing by then is taken for dead, and its clients resume elsewhere.
pub const RETRY_WITHIN: Duration = Duration::from_millis(1500);

/// A channel's events go to every listed gateway once it has this many recipients per listed
/// gateway. Looked up one by one, a 5,000-member channel's message was 5,000 `ZRANGEBYSCORE`s:
/// Redis spent 9-16 % of a core on them at 10-20 messages/s (docs/benchmarks.md, tuning log
/// 19). With members spread at random, four per gateway leave ~2 % (e^-4) of the gateways
/// without one, so the pushes the lookups would have saved are few; below that (direct
/// messages, small groups with many gateways) a push per gateway would be the waste.
pub const BROADCAST_PER_GATEWAY: usize = 4;

/// Channels whose list each gateway is remembered to hold, at most (as many as a gateway keeps,
/// `chat_gateway::member_lists`).
const HELD_PER_GATEWAY: NonZeroUsize = NonZeroUsize::new(65_536).expect("positive");

/// An event to push, with the users who receive it: a channel's members (one `Arc` shared by
/// all of the channel's events in a batch) or the one user a membership change concerns.
#[derive(Clone)]
pub struct Outgoing {
    pub event: Event,
    pub recipients: Arc<Vec<UserId>>,
}

#[derive(Clone)]
pub struct Fanout {
    presence: Presence,
    pusher: Pusher,
    /// How many gateways the last lookup listed: sets which channels are big. Any value routes
    /// correctly (broadcast reaches a superset); it only moves the cost. Starts at 0: the first
    /// batch is broadcast whole.
    listed: Arc<AtomicUsize>,
    /// The member lists each listed gateway holds, as far as this process knows: those of the
    /// batches it accepted with them. A big channel's batch names the list instead of carrying
    /// it where the gateway holds it. Only a hint: a gateway that no longer holds the list
    /// refuses the batch (409), which is then sent again with the lists.
    held: Arc<Mutex<HashMap<String, LruCache<ChannelId, ListDigest>>>>,
}

/// Posts delivery batches to gateways, retrying a failed one in the background.
#[derive(Clone)]
struct Pusher {
    http: reqwest::Client,
    token: SecretString,
    /// Background retries, waited for (bounded) at shutdown.
    retries: TaskTracker,
}

impl Fanout {
    pub fn new(
        presence: Presence,
        token: SecretString,
        timeout: Duration,
        retries: TaskTracker,
    ) -> Result<Self, reqwest::Error> {
        Ok(Fanout {
            presence,
            pusher: Pusher::new(token, timeout, retries)?,
            listed: Arc::new(AtomicUsize::new(0)),
            held: Arc::default(),
        })
    }

    /// Events with at least this many recipients are broadcast.
    fn broadcast_from(&self) -> usize {
        BROADCAST_PER_GATEWAY * self.listed.load(Ordering::Relaxed)
    }

    /// The routes of `users`, and every listed gateway (remembered for [`Self::broadcast_from`]).
    async fn routes(&self, users: &[UserId]) -> Result<Routes, crate::redis_conn::RedisError> {
        let routes = self.presence.routes(users).await?;
        self.listed.store(routes.gateways.len(), Ordering::Relaxed);
        // Gateways no longer listed (stopped, or gone with their address) are forgotten.
        self.held
            .lock()
            .expect("held lists lock")
            .retain(|g, _| routes.gateways.contains(g));
        Ok(routes)
    }

    /// Push ephemeral events: once, without retries; a failure is counted and logged only.
    pub async fn push_ephemeral(&self, outgoing: &[Outgoing]) {
        if outgoing.is_empty() {
            return;
        }
        let broadcast_from = self.broadcast_from();
        let users = recipients_of(outgoing, broadcast_from);
        match self.routes(&users).await {
            Ok(routes) => {
                self.push_to(outgoing, broadcast_from, &users, &routes, false)
                    .await
            }
            Err(e) => {
                metrics::counter!("chat_presence_errors_total").increment(1);
                tracing::debug!(error = %e, "presence lookup failed; ephemeral push dropped");
            }
        }
    }

    pub async fn push(&self, outgoing: &[Outgoing]) {
        if outgoing.is_empty() {
            return;
        }
        let broadcast_from = self.broadcast_from();
        let users = recipients_of(outgoing, broadcast_from);
        match self.routes(&users).await {
            Ok(routes) => {
                self.push_to(outgoing, broadcast_from, &users, &routes, true)
                    .await
            }
            Err(e) => {
                // Stored already; look the recipients up again shortly, so that a channel
                // that goes quiet now still reaches its connected members.
                metrics::counter!("chat_presence_errors_total").increment(1);
                tracing::warn!(error = %e, "presence lookup failed; retrying the push in the background");
                let this = self.clone();
                let outgoing = outgoing.to_vec();
                self.pusher.retries.spawn(async move {
                    let delays = chat_common::retry::backoff(
                        Duration::from_millis(100),
                        RETRY_WITHIN / 4,
                        Some(3),
                    );
                    for delay in delays {
                        tokio::time::sleep(delay).await;
                        if let Ok(routes) = this.routes(&users).await {
                            this.push_to(&outgoing, broadcast_from, &users, &routes, true)
                                .await;
                            return;
                        }
                    }
                    tracing::warn!("gave up looking up presence; gateways resync when it is back");
                });
            }
        }
    }

    /// Push events with `broadcast_from` recipients or more to every listed gateway, the others
    /// to the gateways `routes.of_users[i]` of each recipient `users[i]`; `retry`: retry failed
    /// pushes in the background.
    async fn push_to(
        &self,
        outgoing: &[Outgoing],
        broadcast_from: usize,
        users: &[UserId],
        routes: &Routes,
        retry: bool,
    ) {
        let where_is: HashMap<UserId, &Vec<String>> = users
            .iter()
            .copied()
            .zip(routes.of_users.iter())
            .filter(|(_, g)| !g.is_empty())
            .collect();

        // Per gateway, groups in batch order. Consecutive events with the same recipients (one
        // channel's messages, the same `Arc` from the processor) extend the gateway's last group
        // instead of repeating the recipient list: in a 5,000-member channel that list is ~190 KB
        // (broadcast whole to every gateway), the message ~0.3 KB. Only adjacent events merge,
        // so every recipient still sees events in partition order (a `Left` never overtakes the
        // messages before it). A big channel's list is named (`ListRef`), and left out where
        // the gateway holds it already.
        let mut batches: HashMap<&str, Vec<DeliveryGroup>> = HashMap::new();
        let mut lists: HashMap<ListDigest, Arc<Vec<UserId>>> = HashMap::new();
        // By the list's address: `outgoing` holds every list for the whole call.
        let mut digests: HashMap<usize, ListDigest> = HashMap::new();
        let mut carried: HashSet<(&str, ListRef)> = HashSet::new();
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
            let gateways: Vec<&str> = if o.recipients.len() >= broadcast_from {
                // A channel's runs in one batch (its events between other channels') share
                // their list: its digest is taken once, and it is carried once per gateway.
                let list = channel_of(&o.event).map(|channel_id| ListRef {
                    channel_id,
                    digest: *digests
                        .entry(Arc::as_ptr(&o.recipients) as usize)
                        .or_insert_with(|| ListDigest::of(&o.recipients)),
                });
                if let Some(list) = list {
                    lists.insert(list.digest, o.recipients.clone());
                }
                let held = self.held.lock().expect("held lists lock");
                for g in &routes.gateways {
                    let known = list.is_some_and(|l| {
                        held.get(g).and_then(|h| h.peek(&l.channel_id)) == Some(&l.digest)
                            || !carried.insert((g.as_str(), l))
                    });
                    batches.entry(g.as_str()).or_default().push(DeliveryGroup {
                        recipients: (!known).then(|| o.recipients.to_vec()),
                        list,
                        events: vec![o.event.clone()],
                    });
                }
                routes.gateways.iter().map(String::as_str).collect()
            } else {
                for u in o.recipients.iter() {
                    if let Some(gws) = where_is.get(u) {
                        for g in gws.iter() {
                            per_gateway.entry(g.as_str()).or_default().push(*u);
                        }
                    }
                }
                per_gateway.keys().copied().collect()
            };
            for (g, recipients) in per_gateway {
                batches.entry(g).or_default().push(DeliveryGroup {
                    recipients: Some(recipients),
                    list: None,
                    events: vec![o.event.clone()],
                });
            }
            run = Some((&o.recipients, gateways));
        }

        let lists = &lists;
        let pushes = batches.into_iter().map(|(gateway, mut groups)| async move {
            let events: usize = groups.iter().map(|g| g.events.len()).sum();
            let url = format!("{gateway}{DELIVER_PATH}");
            let lean = groups.iter().any(|g| g.recipients.is_none());
            let mut result = self.pusher.post(&url, body_of(&groups)).await;
            if lean && result.as_ref().is_err_and(refused_a_list) {
                // The gateway does not hold a list named (it restarted, evicted it, or predates
                // named lists): send the batch again with every list, forgetting the hints.
                metrics::counter!("chat_member_list_resends_total").increment(1);
                self.forget_held(gateway);
                fill_lists(&mut groups, lists);
                result = self.pusher.post(&url, body_of(&groups)).await;
            }
            match result {
                Ok(()) => self.note_held(gateway, &groups),
                Err(e) if retry => {
                    tracing::warn!(%gateway, events, error = %e, "push to gateway failed; retrying in the background");
                    // Retries carry every list: the gateway may have lost them meanwhile.
                    fill_lists(&mut groups, lists);
                    self.pusher.retry_later(url, body_of(&groups));
                }
                Err(e) => {
                    tracing::debug!(%gateway, events, error = %e, "ephemeral push to gateway failed");
                }
            }
        });
        futures::future::join_all(pushes).await;
    }

    /// `gateway` accepted `groups`: it holds the lists they carried.
    fn note_held(&self, gateway: &str, groups: &[DeliveryGroup]) {
        let carried = groups
            .iter()
            .filter(|g| g.recipients.is_some())
            .filter_map(|g| g.list);
        let mut held = self.held.lock().expect("held lists lock");
        for list in carried {
            held.entry(gateway.to_owned())
                .or_insert_with(|| LruCache::new(HELD_PER_GATEWAY))
                .put(list.channel_id, list.digest);
        }
    }

    fn forget_held(&self, gateway: &str) {
        self.held.lock().expect("held lists lock").remove(gateway);
    }
}

/// Lists left out of `groups`, put back.
fn fill_lists(groups: &mut [DeliveryGroup], lists: &HashMap<ListDigest, Arc<Vec<UserId>>>) {
    for g in groups {
        if g.recipients.is_none()
            && let Some(ids) = g.list.and_then(|l| lists.get(&l.digest))
        {
            g.recipients = Some(ids.to_vec());
        }
    }
}

fn body_of(groups: &[DeliveryGroup]) -> Bytes {
    Bytes::from(serde_json::to_vec(&DeliveryBatchRef { groups }).expect("batches serialise"))
}

/// A gateway refused a batch for the lists it names: 409 (a list it does not hold) or 400 (a
/// gateway that predates named lists finds `recipients` missing).
fn refused_a_list(e: &reqwest::Error) -> bool {
    matches!(
        e.status(),
        Some(reqwest::StatusCode::CONFLICT | reqwest::StatusCode::BAD_REQUEST)
    )
}

/// The channel whose member list an event goes to: messages and channel events. (Membership
/// changes go to the one user concerned; typing and presence to lists of their own.)
fn channel_of(event: &Event) -> Option<ChannelId> {
    match event {
        Event::Message { message } => Some(message.channel_id),
        Event::Channel { event } => Some(event.channel_id),
        _ => None,
    }
}

/// [`chat_types::internal::DeliveryBatch`], borrowing its groups (so that they can be sent again
/// with the lists put back).
#[derive(serde::Serialize)]
struct DeliveryBatchRef<'a> {
    groups: &'a [DeliveryGroup],
}

/// Every recipient of `outgoing`'s events with fewer than `broadcast_from` recipients (those
/// looked up one by one), each once, sorted.
fn recipients_of(outgoing: &[Outgoing], broadcast_from: usize) -> Vec<UserId> {
    let mut users: Vec<UserId> = outgoing
        .iter()
        .filter(|o| o.recipients.len() < broadcast_from)
        .flat_map(|o| o.recipients.iter().copied())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    users.sort_unstable();
    users
}

impl Pusher {
    fn new(
        token: SecretString,
        timeout: Duration,
        retries: TaskTracker,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(500))
            .pool_max_idle_per_host(8)
            .build()?;
        Ok(Pusher {
            http,
            token,
            retries,
        })
    }

    async fn post(&self, url: &str, body: Bytes) -> Result<(), reqwest::Error> {
        let res = self
            .http
            .post(url)
            .header(INTERNAL_TOKEN_HEADER, self.token.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        let result = if res.is_ok() { "ok" } else { "error" };
        metrics::counter!("chat_pushes_total", "result" => result).increment(1);
        res.map(|_| ())
    }

    fn retry_later(&self, url: String, body: Bytes) {
        let this = self.clone();
        self.retries.spawn(async move {
            let delays =
                chat_common::retry::backoff(Duration::from_millis(100), RETRY_WITHIN / 4, Some(3));
            for delay in delays {
                tokio::time::sleep(delay).await;
                match this.post(&url, body.clone()).await {
                    Ok(()) => {
                        metrics::counter!("chat_push_retries_total", "result" => "ok").increment(1);
                        return;
                    }
                    Err(e) => tracing::debug!(%url, error = %e, "push retry failed"),
                }
            }
            metrics::counter!("chat_push_retries_total", "result" => "gave_up").increment(1);
            tracing::warn!(%url, "gave up pushing to gateway; its clients resume elsewhere");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real HTTP server standing in for a gateway whose delivery endpoint fails `failures`
    /// times, then takes the batch.
    async fn flaky_gateway(failures: usize) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let taken = Arc::new(AtomicUsize::new(0));
        let (c, t) = (calls.clone(), taken.clone());
        let app = axum::Router::new().route(
            DELIVER_PATH,
            axum::routing::post(move || {
                let (c, t) = (c.clone(), t.clone());
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) < failures {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        t.fetch_add(1, Ordering::SeqCst);
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{DELIVER_PATH}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls, taken)
    }

    fn pusher(retries: &TaskTracker) -> Pusher {
        Pusher::new(
            "t".to_owned().into(),
            Duration::from_secs(1),
            retries.clone(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_push_that_fails_for_a_moment_is_delivered_by_a_retry_within_the_limit() {
        let (url, calls, taken) = flaky_gateway(2).await;
        let retries = TaskTracker::new();
        let p = pusher(&retries);
        let started = std::time::Instant::now();
        assert!(p.post(&url, Bytes::from_static(b"{}")).await.is_err());
        p.retry_later(url, Bytes::from_static(b"{}"));
        retries.close();
        retries.wait().await;
        assert_eq!(taken.load(Ordering::SeqCst), 1, "the batch got through");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_gateway_that_keeps_failing_is_given_up_after_a_bounded_number_of_retries() {
        let (url, calls, taken) = flaky_gateway(usize::MAX).await;
        let retries = TaskTracker::new();
        let p = pusher(&retries);
        p.retry_later(url, Bytes::from_static(b"{}"));
        retries.close();
        retries.wait().await;
        assert_eq!(taken.load(Ordering::SeqCst), 0);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "three retries, then it gives up"
        );
    }
}
