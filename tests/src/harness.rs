//! The delivery harness: many clients in many channels, every frame recorded, and a verdict that
//! counts lost, duplicated and reordered messages per client.
//!
//! Clients behave like the real ones are documented to (`docs/protocol.md`): on any connection
//! loss they reconnect through nginx with backoff, send `resume` with the last message id seen
//! per channel, and resend every unacked send with its original `client_msg_id`.

use crate::{Api, Ws};
use anyhow::{Context, bail};
use chat_types::rest::{Channel, Session};
use chat_types::ws::{ClientFrame, ServerFrame};
use chat_types::{ChannelId, Message, MessageId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What one client saw.
#[derive(Default)]
pub struct Log {
    /// `message` frames, in arrival order, across reconnects.
    pub received: Vec<Message>,
    /// client_msg_id -> acked message.
    pub acked: HashMap<String, Message>,
    pub reconnects: u32,
    pub close_reasons: Vec<String>,
}

struct Outgoing {
    channel: ChannelId,
    client_msg_id: String,
    body: String,
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
    pub async fn start(session: Session, channels: Vec<ChannelId>) -> anyhow::Result<Client> {
        let log = Arc::new(Mutex::new(Log::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let (reading, reading_rx) = watch::channel(true);
        let (stop, stop_rx) = watch::channel(false);
        let first = Ws::connect(&session.access_token).await?;
        let task = tokio::spawn(run(
            session.access_token.clone(),
            channels,
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
        let _ = self.tx.send(Outgoing {
            channel,
            client_msg_id,
            body,
        });
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

async fn run(
    token: String,
    channels: Vec<ChannelId>,
    mut ws: Ws,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    log: Arc<Mutex<Log>>,
    mut reading: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut unacked: BTreeMap<String, (ChannelId, String)> = BTreeMap::new();
    let mut last_seen: HashMap<ChannelId, MessageId> = HashMap::new();
    let mut backoff = Duration::from_millis(100);
    'session: loop {
        // One connection's life.
        let err: anyhow::Error = loop {
            let read_ok = *reading.borrow();
            tokio::select! {
                _ = stop.changed() => return,
                _ = reading.changed() => continue,
                out = outgoing.recv() => {
                    let Some(o) = out else { return };
                    unacked.insert(o.client_msg_id.clone(), (o.channel, o.body.clone()));
                    if let Err(e) = ws.send(&ClientFrame::Send { channel_id: o.channel, client_msg_id: o.client_msg_id, body: o.body }).await {
                        break e;
                    }
                }
                frame = ws.next_within(Duration::from_secs(3600)), if read_ok => {
                    let frame = match frame {
                        Ok(Some(f)) => f,
                        Ok(None) => continue,
                        Err(e) => break e,
                    };
                    backoff = Duration::from_millis(100);
                    let mut l = log.lock().expect("log");
                    match frame {
                        ServerFrame::Message { message } => {
                            last_seen.insert(message.channel_id, message.id);
                            l.received.push(message);
                        }
                        ServerFrame::Ack { client_msg_id, message } => {
                            unacked.remove(&client_msg_id);
                            l.acked.insert(client_msg_id, message);
                        }
                        ServerFrame::Error { code, client_msg_id: Some(cmid), .. } if code == "unavailable" => {
                            // Stays in `unacked`; resent after the next reconnect or right away.
                            if let Some((c, b)) = unacked.get(&cmid).cloned() {
                                drop(l);
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                if let Err(e) = ws.send(&ClientFrame::Send { channel_id: c, client_msg_id: cmid, body: b }).await {
                                    break e;
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        };
        log.lock()
            .expect("log")
            .close_reasons
            .push(format!("{err:#}"));
        // Reconnect through nginx, resume, resend.
        loop {
            if *stop.borrow() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            let Ok(mut fresh) = Ws::connect(&token).await else {
                continue;
            };
            let resume: BTreeMap<ChannelId, MessageId> = channels
                .iter()
                .filter_map(|c| last_seen.get(c).map(|m| (*c, *m)))
                .collect();
            if fresh
                .send(&ClientFrame::Resume { channels: resume })
                .await
                .is_err()
            {
                continue;
            }
            for (cmid, (c, b)) in &unacked {
                if fresh
                    .send(&ClientFrame::Send {
                        channel_id: *c,
                        client_msg_id: cmid.clone(),
                        body: b.clone(),
                    })
                    .await
                    .is_err()
                {
                    continue;
                }
            }
            log.lock().expect("log").reconnects += 1;
            ws = fresh;
            continue 'session;
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
}

impl Crowd {
    /// `users` users; `channels` channels of `per_channel` members each, assigned round-robin.
    pub async fn new(users: usize, channels: usize, per_channel: usize) -> anyhow::Result<Crowd> {
        let api = Api::default();
        let mut sessions = Vec::with_capacity(users);
        for _ in 0..users {
            sessions.push(api.register("crowd").await?);
        }
        let mut chans = Vec::with_capacity(channels);
        let mut members = Vec::with_capacity(channels);
        let mut my_channels: Vec<Vec<ChannelId>> = vec![Vec::new(); users];
        for c in 0..channels {
            let owner = c % users;
            let ch = api
                .create_channel(&sessions[owner].access_token, &crate::unique("crowd-"))
                .await?;
            let mut m = vec![owner];
            for k in 1..per_channel {
                let u = (owner + k * (users / per_channel).max(1)) % users;
                if !m.contains(&u) {
                    api.join(&sessions[u].access_token, ch.id).await?;
                    m.push(u);
                }
            }
            for u in &m {
                my_channels[*u].push(ch.id);
            }
            members.push(m);
            chans.push(ch);
        }
        let mut clients = Vec::with_capacity(users);
        for (s, mine) in sessions.into_iter().zip(my_channels) {
            clients.push(Client::start(s, mine).await?);
        }
        Ok(Crowd {
            api,
            channels: chans,
            members,
            clients,
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
            }
            tokio::time::sleep(pause).await;
        }
        Ok(sent)
    }

    /// Wait until every send is acked and every member holds every message of its channels
    /// (or `limit` passes), then stop the clients and judge.
    pub async fn finish(self, sent: usize, limit: Duration) -> anyhow::Result<Verdict> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let acked: usize = self
                .clients
                .iter()
                .map(|c| c.log.lock().expect("log").acked.len())
                .sum();
            let complete = acked >= sent && {
                let stored: HashMap<ChannelId, HashSet<MessageId>> = self.acked_by_channel();
                self.clients.iter().enumerate().all(|(i, c)| {
                    let l = c.log.lock().expect("log");
                    let have: HashSet<MessageId> = l.received.iter().map(|m| m.id).collect();
                    self.channels_of(i)
                        .iter()
                        .all(|ch| stored.get(ch).is_none_or(|ids| ids.is_subset(&have)))
                })
            };
            if complete || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let expected = self.acked_by_channel();
        let mut verdict = Verdict {
            sent,
            ..Default::default()
        };
        for (i, c) in self.clients.iter().enumerate() {
            let l = c.log.lock().expect("log");
            verdict.acked += l.acked.len();
            verdict.reconnects += l.reconnects;
            let mut seen: HashSet<MessageId> = HashSet::new();
            let mut last_seq: HashMap<ChannelId, i64> = HashMap::new();
            for m in &l.received {
                verdict.received += 1;
                if !seen.insert(m.id) {
                    verdict.duplicated += 1;
                }
                let seq = m.seq.unwrap_or(0);
                let last = last_seq.entry(m.channel_id).or_insert(0);
                if seq <= *last {
                    verdict.reordered += 1;
                }
                *last = (*last).max(seq);
            }
            for ch in self.channels_of(i) {
                if let Some(ids) = expected.get(&ch) {
                    verdict.expected += ids.len();
                    verdict.lost += ids.difference(&seen).count();
                }
            }
        }
        // Every acked message must also be in history, once, in positions 1..=n.
        for (c, ch) in self.channels.iter().enumerate() {
            let token = &self.clients[self.members[c][0]].session.access_token;
            let mut all: Vec<Message> = Vec::new();
            let mut query = "?limit=100".to_string();
            loop {
                let page = self.api.history(token, ch.id, &query).await?.messages;
                let Some(first) = page.first() else { break };
                query = format!("?limit=100&before={}", first.id);
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
            if all
                .iter()
                .enumerate()
                .any(|(i, m)| m.seq != Some(i as i64 + 1))
            {
                verdict.history_reordered += 1;
            }
        }
        for c in self.clients {
            c.stop().await;
        }
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
        if self.acked != self.sent
            || self.lost
                + self.duplicated
                + self.reordered
                + self.history_lost
                + self.history_duplicated
                + self.history_reordered
                > 0
        {
            bail!("{name}: delivery guarantees violated: {self:?}");
        }
        Ok(())
    }
}
