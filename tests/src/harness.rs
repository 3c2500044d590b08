//! The delivery harness: many clients in many channels, every frame recorded, and a verdict that
//! counts lost, duplicated and reordered messages per client.
//!
//! Clients behave like the real ones are documented to (`docs/protocol.md`): on any connection
//! loss they reconnect through nginx with backoff, send `resume` with the last message id seen
//! per channel, and resend every unacked send with its original `client_msg_id`.

use anyhow::{Context, bail};
use chat_client::{Api, Backoff, Connection, Connector, Outbox, Page};
use chat_types::events::ChannelEvent;
use chat_types::rest::{Channel, Session};
use chat_types::ws::{ClientFrame, ServerFrame, error_code};
use chat_types::{ChannelId, EventId, Message, MessageId};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Reconnect delays of the test clients: short, so an outage costs a test seconds, not minutes.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));

/// What one client saw.
#[derive(Default)]
pub struct Log {
    /// `message` frames, in arrival order, across reconnects.
    pub received: Vec<Message>,
    /// When each of `received` arrived.
    pub arrived: Vec<Instant>,
    /// When each acked message was acked to this client (its sender).
    pub acked_at: Vec<(MessageId, Instant)>,
    /// client_msg_id -> acked message.
    pub acked: HashMap<String, Message>,
    /// client_msg_id -> when it was first sent (resends keep the first time).
    pub sent_at: HashMap<String, Instant>,
    /// Each acked message of this client's and when it was first sent.
    pub first_sent: Vec<(MessageId, Instant)>,
    /// `event` frames, in arrival order, across reconnects.
    pub events: Vec<ChannelEvent>,
    /// client_event_id -> the acked event's channel and id.
    pub events_acked: HashMap<String, (ChannelId, EventId)>,
    /// Every positioned frame (message or event) as (channel, seq), in arrival order.
    pub positions: Vec<(ChannelId, i64)>,
    pub reconnects: u32,
    pub close_reasons: Vec<String>,
    /// The connection's life: when it connected (to which gateway), was lost (why) and
    /// reconnected, to explain a late delivery.
    pub connection: Vec<(Instant, String)>,
}

enum Outgoing {
    Message {
        channel: ChannelId,
        client_msg_id: String,
        body: String,
    },
    /// An edit, delete, react or unreact frame.
    Change(ClientFrame),
}

/// A change's `client_event_id` and channel.
fn change_ids(f: &ClientFrame) -> (String, ChannelId) {
    match f {
        ClientFrame::Edit {
            client_event_id,
            channel_id,
            ..
        }
        | ClientFrame::Delete {
            client_event_id,
            channel_id,
            ..
        }
        | ClientFrame::React {
            client_event_id,
            channel_id,
            ..
        }
        | ClientFrame::Unreact {
            client_event_id,
            channel_id,
            ..
        } => (client_event_id.clone(), *channel_id),
        other => panic!("not a change: {other:?}"),
    }
}

/// A client that keeps one logical session alive across connection losses.
pub struct Client {
    pub session: Session,
    pub log: Arc<Mutex<Log>>,
    tx: mpsc::UnboundedSender<Outgoing>,
    /// While false, the client does not read its socket (a stalled phone).
    reading: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    pub async fn start(session: Session) -> anyhow::Result<Client> {
        let log = Arc::new(Mutex::new(Log::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let (reading, reading_rx) = watch::channel(true);
        let (stop, stop_rx) = watch::channel(false);
        // No read timeout: a quiet connection is not a lost one.
        let connector = Connector::for_base(&crate::base_url());
        let first = connector.connect(&session.access_token).await?;
        log.lock()
            .expect("log")
            .connection
            .push((Instant::now(), format!("connected to {}", first.gateway())));
        let task = tokio::spawn(run(
            connector,
            session.access_token.clone(),
            first,
            rx,
            log.clone(),
            reading_rx,
            stop_rx,
        ));
        Ok(Client {
            session,
            log,
            tx,
            reading,
            stop,
            task,
        })
    }

    pub fn send(&self, channel: ChannelId, client_msg_id: String, body: String) {
        let _ = self.tx.send(Outgoing::Message {
            channel,
            client_msg_id,
            body,
        });
    }

    /// An edit, delete, react or unreact, resent (same `client_event_id`) until acked.
    pub fn change(&self, frame: ClientFrame) {
        let _ = self.tx.send(Outgoing::Change(frame));
    }

    pub fn pause_reading(&self, paused: bool) {
        let _ = self.reading.send(!paused);
    }

    pub async fn stop(self) -> Arc<Mutex<Log>> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.log
    }
}

/// The client's life: serve a connection until it is lost, reconnect (`resume`, resend), again.
async fn run(
    connector: Connector,
    token: String,
    mut ws: Connection,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    log: Arc<Mutex<Log>>,
    mut reading: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut outbox = Outbox::new();
    // Changes sent and not acked yet, by client_event_id.
    let mut changes: HashMap<String, ClientFrame> = HashMap::new();
    loop {
        let lost = serve(
            &mut ws,
            &mut outbox,
            &mut changes,
            &mut outgoing,
            &log,
            &mut reading,
            &mut stop,
        )
        .await;
        let Err(err) = lost else { return };
        {
            let mut l = log.lock().expect("log");
            l.close_reasons.push(format!("{err:#}"));
            l.connection
                .push((Instant::now(), format!("lost: {err:#}")));
        }
        let stopped = || *stop.borrow();
        match outbox
            .reconnect(&connector, &token, None, &BACKOFF, stopped)
            .await
        {
            Some((fresh, _)) => {
                {
                    let mut l = log.lock().expect("log");
                    l.reconnects += 1;
                    l.connection.push((
                        Instant::now(),
                        format!("reconnected to {}", fresh.gateway()),
                    ));
                }
                ws = fresh;
                // Like unacked sends (the outbox resent them): every unacked change again.
                for f in changes.values() {
                    if ws.send(f).await.is_err() {
                        break;
                    }
                }
            }
            None => return,
        }
    }
}

/// One connection's life: `Ok` when the client stops, the error when the connection is lost.
async fn serve(
    ws: &mut Connection,
    outbox: &mut Outbox,
    changes: &mut HashMap<String, ClientFrame>,
    outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
    log: &Mutex<Log>,
    reading: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> chat_client::Result<()> {
    // Sends refused with `rate_limited`, due for a resend at their retry time.
    let mut later: BTreeSet<(Instant, String)> = BTreeSet::new();
    loop {
        let read_ok = *reading.borrow();
        let next_due = later.first().map(|(at, _)| *at);
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = reading.changed() => continue,
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let Some((_, cmid)) = later.pop_first() else { continue };
                let again = match cmid.strip_prefix("event:") {
                    Some(cid) => changes.get(cid).cloned(),
                    None => outbox.resend_frame(&cmid),
                };
                if let Some(again) = again {
                    ws.send(&again).await?;
                }
            }
            out = outgoing.recv() => {
                match out {
                    None => return Ok(()),
                    Some(Outgoing::Message { channel, client_msg_id, body }) => {
                        log.lock().expect("log").sent_at.entry(client_msg_id.clone()).or_insert_with(Instant::now);
                        outbox.sent(channel, client_msg_id.clone(), body.clone());
                        ws.send_message(channel, &client_msg_id, &body).await?;
                    }
                    Some(Outgoing::Change(f)) => {
                        changes.insert(change_ids(&f).0, f.clone());
                        ws.send(&f).await?;
                    }
                }
            }
            frame = ws.next_frame(), if read_ok => {
                let frame = frame?;
                outbox.observe(&frame);
                match frame {
                    ServerFrame::Message { message } => {
                        let mut l = log.lock().expect("log");
                        l.positions.push((message.channel_id, message.seq.unwrap_or(0)));
                        l.received.push(message);
                        l.arrived.push(Instant::now());
                    }
                    ServerFrame::Event { event } => {
                        let mut l = log.lock().expect("log");
                        l.positions.push((event.channel_id, event.seq));
                        l.events.push(event);
                    }
                    ServerFrame::EventAck { client_event_id, event_id } => {
                        if let Some(f) = changes.remove(&client_event_id) {
                            let channel = change_ids(&f).1;
                            log.lock().expect("log").events_acked.insert(client_event_id, (channel, event_id));
                        }
                    }
                    ServerFrame::Error { code, client_event_id: Some(cid), retry_after_ms, .. }
                        if code == error_code::UNAVAILABLE || code == error_code::RATE_LIMITED =>
                    {
                        let wait = Duration::from_millis(retry_after_ms.unwrap_or(200));
                        later.insert((Instant::now() + wait, format!("event:{cid}")));
                    }
                    ServerFrame::Ack { client_msg_id, message } => {
                        let mut l = log.lock().expect("log");
                        let now = Instant::now();
                        if !l.acked.contains_key(&client_msg_id)
                            && let Some(sent) = l.sent_at.get(&client_msg_id).copied()
                        {
                            l.first_sent.push((message.id, sent));
                        }
                        l.acked_at.push((message.id, now));
                        l.acked.insert(client_msg_id, message);
                    }
                    ServerFrame::Error { code, client_msg_id: Some(cmid), .. }
                        if code == error_code::UNAVAILABLE =>
                    {
                        // Not durable yet: the same send again, with the same client_msg_id.
                        if let Some(again) = outbox.resend_frame(&cmid) {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            ws.send(&again).await?;
                        }
                    }
                    ServerFrame::Error { code, client_msg_id: Some(cmid), retry_after_ms, .. }
                        if code == error_code::RATE_LIMITED =>
                    {
                        // Over the send rate: the same send again once the gateway says so.
                        let wait = Duration::from_millis(retry_after_ms.unwrap_or(1000));
                        later.insert((Instant::now() + wait, cmid));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Users, channels and clients of one scenario.
pub struct Crowd {
    pub api: Api,
    pub channels: Vec<Channel>,
    /// Members (indexes into `clients`) of each channel.
    pub members: Vec<Vec<usize>>,
    pub clients: Vec<Client>,
    /// Edits and reactions sent by [`Crowd::stream_changing`].
    changes_sent: std::sync::atomic::AtomicUsize,
}

impl Crowd {
    /// `users` users; `channels` channels of `per_channel` members each, assigned round-robin.
    pub async fn new(users: usize, channels: usize, per_channel: usize) -> anyhow::Result<Crowd> {
        let api = crate::api();
        let mut sessions = Vec::with_capacity(users);
        for _ in 0..users {
            sessions.push(crate::register(&api, "crowd").await?);
        }
        let mut chans = Vec::with_capacity(channels);
        let mut members = Vec::with_capacity(channels);
        for c in 0..channels {
            let owner = c % users;
            let ch = api
                .create_channel(
                    &sessions[owner].access_token,
                    &crate::unique("crowd-"),
                    None,
                )
                .await?;
            let mut m = vec![owner];
            for k in 1..per_channel {
                let u = (owner + k * (users / per_channel).max(1)) % users;
                if !m.contains(&u) {
                    api.join(&sessions[u].access_token, ch.id).await?;
                    m.push(u);
                }
            }
            members.push(m);
            chans.push(ch);
        }
        let mut clients = Vec::with_capacity(users);
        for s in sessions {
            clients.push(Client::start(s).await?);
        }
        Ok(Crowd {
            api,
            channels: chans,
            members,
            clients,
            changes_sent: Default::default(),
        })
    }

    /// Send `per_channel` messages in every channel, from its members in turn, `pause` apart,
    /// calling `midway` once half of them are out.
    pub async fn stream<F, Fut>(
        &self,
        per_channel: usize,
        pause: Duration,
        midway: F,
    ) -> anyhow::Result<usize>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        self.stream_changing(per_channel, pause, 0, midway).await
    }

    /// [`Crowd::stream`], and every `every`-th round (0: never) each channel's sender of the
    /// round also changes a message it has received there: alternately an edit of its own
    /// newest message and a reaction (an emoji used once, so never a no-op) to the newest one.
    pub async fn stream_changing<F, Fut>(
        &self,
        per_channel: usize,
        pause: Duration,
        every: usize,
        midway: F,
    ) -> anyhow::Result<usize>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let mut midway = Some(midway);
        let mut sent = 0;
        for i in 0..per_channel {
            if i == per_channel / 2
                && let Some(f) = midway.take()
            {
                f().await.context("midway action")?;
            }
            for (c, ch) in self.channels.iter().enumerate() {
                let from = self.members[c][i % self.members[c].len()];
                self.clients[from].send(
                    ch.id,
                    uuid::Uuid::new_v4().to_string(),
                    format!("{} #{i} from {from}", ch.name),
                );
                sent += 1;
                if every > 0 && (i + 1).is_multiple_of(every) {
                    self.change_one(from, ch.id, i, c);
                }
            }
            tokio::time::sleep(pause).await;
        }
        Ok(sent)
    }

    fn change_one(&self, from: usize, channel: ChannelId, round: usize, c: usize) {
        let client = &self.clients[from];
        let me = client.session.user.id;
        let edit = (round / 2).is_multiple_of(2);
        let target = {
            let l = client.log.lock().expect("log");
            l.received
                .iter()
                .rev()
                .find(|m| m.channel_id == channel && (!edit || m.sender_id == me))
                .map(|m| m.id)
        };
        let Some(message_id) = target else { return };
        let client_event_id = uuid::Uuid::new_v4().to_string();
        let frame = if edit {
            ClientFrame::Edit {
                channel_id: channel,
                message_id,
                client_event_id,
                body: format!("edited in round {round}"),
            }
        } else {
            ClientFrame::React {
                channel_id: channel,
                message_id,
                client_event_id,
                emoji: format!(":r{round}c{c}:"),
            }
        };
        client.change(frame);
        self.changes_sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Wait until every send is acked and every member holds every message of its channels
    /// (or `limit` passes), then stop the clients and judge.
    /// Wait (bounded) until every client has received at least `n` messages.
    pub async fn wait_received(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        while self
            .clients
            .iter()
            .any(|c| c.log.lock().expect("log").received.len() < n)
        {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "not every client received {n} messages within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub async fn finish(self, sent: usize, limit: Duration) -> anyhow::Result<Verdict> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let acked: usize = self
                .clients
                .iter()
                .map(|c| c.log.lock().expect("log").acked.len())
                .sum();
            let changes_acked: usize = self
                .clients
                .iter()
                .map(|c| c.log.lock().expect("log").events_acked.len())
                .sum();
            let changes_sent = self.changes_sent.load(std::sync::atomic::Ordering::Relaxed);
            let complete = acked >= sent && changes_acked >= changes_sent && {
                let stored: HashMap<ChannelId, HashSet<MessageId>> = self.acked_by_channel();
                let events = self.events_by_channel();
                self.clients.iter().enumerate().all(|(i, c)| {
                    let l = c.log.lock().expect("log");
                    let have: HashSet<MessageId> = l.received.iter().map(|m| m.id).collect();
                    let have_events: HashSet<EventId> = l.events.iter().map(|e| e.id).collect();
                    self.channels_of(i).iter().all(|ch| {
                        stored.get(ch).is_none_or(|ids| ids.is_subset(&have))
                            && events.get(ch).is_none_or(|ids| ids.is_subset(&have_events))
                    })
                })
            };
            if complete || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let expected = self.acked_by_channel();
        let expected_events = self.events_by_channel();
        let mut verdict = Verdict {
            sent,
            changes_sent: self.changes_sent.load(std::sync::atomic::Ordering::Relaxed),
            ..Default::default()
        };
        let acked_at: HashMap<MessageId, Instant> = self
            .clients
            .iter()
            .flat_map(|c| c.log.lock().expect("log").acked_at.clone())
            .collect();
        let first_sent: HashMap<MessageId, Instant> = self
            .clients
            .iter()
            .flat_map(|c| c.log.lock().expect("log").first_sent.clone())
            .collect();
        verdict.send_to_ack = first_sent
            .iter()
            .filter_map(|(m, sent)| Some(*acked_at.get(m)? - *sent))
            .collect();
        let sender_of: HashMap<MessageId, usize> = self
            .clients
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                let l = c.log.lock().expect("log");
                l.acked_at.iter().map(|(m, _)| (*m, i)).collect::<Vec<_>>()
            })
            .collect();
        // (how late, receiver, message, channel, acked at)
        let mut slowest: Option<(Duration, usize, MessageId, ChannelId, Instant)> = None;
        for (i, c) in self.clients.iter().enumerate() {
            let l = c.log.lock().expect("log");
            let mut lost_at = None;
            for (at, what) in &l.connection {
                if what.starts_with("lost") {
                    lost_at = lost_at.or(Some(*at));
                } else if let Some(lost) = lost_at.take() {
                    verdict.longest_reconnect = verdict.longest_reconnect.max(*at - lost);
                }
            }
            verdict.acked += l.acked.len();
            verdict.reconnects += l.reconnects;
            verdict.changes_acked += l.events_acked.len();
            let mut seen: HashSet<MessageId> = HashSet::new();
            for (m, arrived) in l.received.iter().zip(&l.arrived) {
                verdict.received += 1;
                if !seen.insert(m.id) {
                    verdict.duplicated += 1;
                } else if let Some(acked) = acked_at.get(&m.id) {
                    if let Some(sent) = first_sent.get(&m.id) {
                        verdict.send_to_delivery.push(*arrived - *sent);
                    }
                    let after = arrived.saturating_duration_since(*acked);
                    verdict.after_ack.push(after);
                    if slowest.is_none_or(|s| after > s.0) {
                        slowest = Some((after, i, m.id, m.channel_id, *acked));
                    }
                    let longest = verdict.longest_after_ack.entry(m.channel_id).or_default();
                    *longest = (*longest).max(after);
                }
            }
            let mut seen_events: HashSet<EventId> = HashSet::new();
            for e in &l.events {
                verdict.events_received += 1;
                if !seen_events.insert(e.id) {
                    verdict.events_duplicated += 1;
                }
            }
            // Messages and events share the channel's positions: strictly increasing.
            let mut last_seq: HashMap<ChannelId, i64> = HashMap::new();
            for (channel, seq) in &l.positions {
                let last = last_seq.entry(*channel).or_insert(0);
                if *seq <= *last {
                    verdict.reordered += 1;
                }
                *last = (*last).max(*seq);
            }
            for ch in self.channels_of(i) {
                if let Some(ids) = expected.get(&ch) {
                    verdict.expected += ids.len();
                    verdict.lost += ids.difference(&seen).count();
                }
                if let Some(ids) = expected_events.get(&ch) {
                    verdict.events_expected += ids.len();
                    verdict.events_lost += ids.difference(&seen_events).count();
                }
            }
        }
        // Every acked message must also be in history, once, at increasing positions.
        for (c, ch) in self.channels.iter().enumerate() {
            let token = &self.clients[self.members[c][0]].session.access_token;
            let mut all: Vec<Message> = Vec::new();
            let mut page_of = Page::newest(100);
            loop {
                let page = self.api.history(token, ch.id, page_of).await?;
                let Some(first) = page.first() else { break };
                page_of = Page::before(first.id, 100);
                let n = page.len();
                all.splice(0..0, page);
                if n < 100 {
                    break;
                }
            }
            let ids: HashSet<MessageId> = all.iter().map(|m| m.id).collect();
            verdict.history_duplicated += all.len() - ids.len();
            verdict.history_lost += expected
                .get(&ch.id)
                .map_or(0, |e| e.difference(&ids).count());
            if all.windows(2).any(|w| w[0].seq >= w[1].seq) {
                verdict.history_reordered += 1;
            }
        }
        if let Some((after, receiver, message, channel, acked)) = slowest {
            let life = |i: usize| {
                let l = self.clients[i].log.lock().expect("log");
                l.connection
                    .iter()
                    .map(|(at, what)| {
                        let ms = if *at >= acked {
                            (*at - acked).as_millis() as i64
                        } else {
                            -((acked - *at).as_millis() as i64)
                        };
                        format!("{ms:+} ms {what}")
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let sender = sender_of.get(&message).copied();
            verdict.slowest = Some(format!(
                "message {message} in channel {channel} reached client {receiver} {} ms after client {} got its ack (at +0 ms). Receiver's connection: {}. Sender's: {}",
                after.as_millis(),
                sender.map_or("?".into(), |s| s.to_string()),
                life(receiver),
                sender.map_or(String::new(), life),
            ));
        }
        for c in self.clients {
            c.stop().await;
        }
        verdict.after_ack.sort();
        verdict.send_to_ack.sort();
        verdict.send_to_delivery.sort();
        Ok(verdict)
    }

    fn channels_of(&self, client: usize) -> Vec<ChannelId> {
        self.members
            .iter()
            .zip(&self.channels)
            .filter(|(m, _)| m.contains(&client))
            .map(|(_, ch)| ch.id)
            .collect()
    }

    fn events_by_channel(&self) -> HashMap<ChannelId, HashSet<EventId>> {
        let mut out: HashMap<ChannelId, HashSet<EventId>> = HashMap::new();
        for c in &self.clients {
            for (ch, id) in c.log.lock().expect("log").events_acked.values() {
                out.entry(*ch).or_default().insert(*id);
            }
        }
        out
    }

    fn acked_by_channel(&self) -> HashMap<ChannelId, HashSet<MessageId>> {
        let mut out: HashMap<ChannelId, HashSet<MessageId>> = HashMap::new();
        for c in &self.clients {
            for m in c.log.lock().expect("log").acked.values() {
                out.entry(m.channel_id).or_default().insert(m.id);
            }
        }
        out
    }
}

/// "p50 X ms, p99 Y ms, longest Z ms" of sorted durations; `None` when there are none.
fn spread(sorted: &[Duration]) -> Option<String> {
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let longest = sorted.last()?.as_secs_f64() * 1e3;
    Some(format!(
        "p50 {:.0} ms, p99 {:.0} ms, longest {longest:.0} ms",
        at(0.50),
        at(0.99)
    ))
}

/// The numbers a delivery test states and asserts.
#[derive(Debug, Default)]
pub struct Verdict {
    pub sent: usize,
    pub acked: usize,
    /// Deliveries owed: for each client, the acked messages of its channels.
    pub expected: usize,
    pub received: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub reordered: usize,
    pub history_lost: usize,
    pub history_duplicated: usize,
    pub history_reordered: usize,
    pub reconnects: u32,
    /// Edits and reactions ([`Crowd::stream_changing`]): sent, acked, and their deliveries.
    pub changes_sent: usize,
    pub changes_acked: usize,
    pub events_expected: usize,
    pub events_received: usize,
    pub events_lost: usize,
    pub events_duplicated: usize,
    /// Each message's first arrival at each member, after its sender's ack (0 when it arrived
    /// first), sorted: how long a fault held deliveries up.
    pub after_ack: Vec<Duration>,
    /// The longest of `after_ack` per channel.
    pub longest_after_ack: HashMap<ChannelId, Duration>,
    /// Each acked send's time from its first send to its ack (resends included), sorted.
    pub send_to_ack: Vec<Duration>,
    /// Each message's first arrival at each member, from its first send, sorted: what a user
    /// waits for a message sent during a fault.
    pub send_to_delivery: Vec<Duration>,
    /// The latest delivery, and what the connections of its sender and receiver went through
    /// around it.
    pub slowest: Option<String>,
    /// The longest any client took from losing its connection to being connected again.
    pub longest_reconnect: Duration,
}

impl Verdict {
    /// Print the numbers and fail unless every send was acked and nothing was lost, duplicated
    /// or reordered, live or in history.
    pub fn report_and_check(&self, name: &str) -> anyhow::Result<()> {
        println!(
            "{name}: sent {} acked {} | deliveries expected {} received {} lost {} duplicated {} reordered {} | history lost {} duplicated {} reordered {} | reconnects {}",
            self.sent,
            self.acked,
            self.expected,
            self.received,
            self.lost,
            self.duplicated,
            self.reordered,
            self.history_lost,
            self.history_duplicated,
            self.history_reordered,
            self.reconnects
        );
        if self.reconnects > 0 {
            println!(
                "{name}: the longest a client took to reconnect after losing its connection: {} ms",
                self.longest_reconnect.as_millis()
            );
        }
        if let Some(spread) = spread(&self.send_to_ack) {
            println!("{name}: send to ack (resends included): {spread}");
        }
        if let Some(spread) = spread(&self.send_to_delivery) {
            println!("{name}: send to delivery: {spread}");
        }
        if let Some(spread) = spread(&self.after_ack) {
            println!(
                "{name}: delivery after the sender's ack: {spread} (the pause the fault caused)"
            );
        }
        if self
            .after_ack
            .last()
            .is_some_and(|longest| *longest > Duration::from_secs(1))
            && let Some(slowest) = &self.slowest
        {
            println!("{name}: slowest delivery: {slowest}");
        }
        if self.changes_sent > 0 {
            println!(
                "{name}: changes sent {} acked {} | event deliveries expected {} received {} lost {} duplicated {} (reordering counted above, over messages and events)",
                self.changes_sent,
                self.changes_acked,
                self.events_expected,
                self.events_received,
                self.events_lost,
                self.events_duplicated,
            );
        }
        if self.acked != self.sent
            || self.changes_acked != self.changes_sent
            || self.lost
                + self.events_lost
                + self.events_duplicated
                + self.duplicated
                + self.reordered
                + self.history_lost
                + self.history_duplicated
                + self.history_reordered
                > 0
        {
            bail!("{name}: delivery guarantees violated (the counts are printed above)");
        }
        Ok(())
    }
}
