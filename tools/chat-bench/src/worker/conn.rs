//! One connection of a worker: a task that reads every frame, sends on its schedule and checks
//! positions; on a drop it reconnects through `chat-client` (`resume` from the last message it
//! has, then every unacked send again), exactly as `docs/protocol.md` tells clients to.

use super::positions::{ChanState, Seen};
use super::schedule::Schedule;
use super::state::W;
use crate::proto::*;
use crate::stats;
use chat_client::{Backoff, Connection, Error, Outbox};
use chat_types::ws::ClientFrame;
use chat_types::{ChannelId, MessageId};
use serde::Deserialize;
use std::borrow::Cow;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Reconnect delays of the bench's clients (jittered): a run measures seconds, not minutes.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The parts of a server frame the bench counts, borrowed from the text: a delivery costs no
/// allocation (the typed `chat_types::ws::ServerFrame` allocates its strings and parses the
/// timestamp, which at hundreds of thousands of deliveries a second is client CPU taken from
/// the stack under test on the same machine).
#[derive(Deserialize)]
struct FrameView<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<MessageView<'a>>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_msg_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event: Option<EventView<'a>>,
}

/// The parts of an `event` frame the bench needs: where it is.
#[derive(Deserialize)]
struct EventView<'a> {
    #[serde(borrow)]
    channel_id: Cow<'a, str>,
    seq: i64,
}

#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    channel_id: Cow<'a, str>,
    #[serde(borrow, default)]
    sender_id: Cow<'a, str>,
    #[serde(borrow)]
    body: Cow<'a, str>,
    #[serde(default)]
    seq: Option<i64>,
}

/// `<run tag> <sender connection> <send time, Unix ns> <padding>`
fn parse_body<'b>(body: &'b str, tag: &str) -> Option<(u32, u64, &'b str)> {
    let mut it = body.splitn(4, ' ');
    if it.next()? != tag {
        return None;
    }
    let sender = it.next()?.parse().ok()?;
    let sent = it.next()?.parse().ok()?;
    Some((sender, sent, it.next().unwrap_or("")))
}

/// How a connection was lost, as the report counts it.
fn lost_reason(e: &Error) -> String {
    match e {
        Error::Closed {
            code: Some(code), ..
        } => format!("closed {code}"),
        Error::Closed { code: None, .. } => "closed".to_string(),
        Error::Ended => "eof".to_string(),
        Error::WebSocket(e) => format!("error: {e}"),
        e => format!("error: {e}"),
    }
}

struct Conn {
    w: Rc<W>,
    spec_idx: usize,
    chans: Vec<ChanState>,
    /// Unacked sends and the last message per channel: what a reconnect replays.
    outbox: Outbox,
    next_send_channel: usize,
    sent_n: u64,
    ping_sent: Option<Instant>,
    /// Mixed workload: per channel index, the newest message seen and the newest of this
    /// connection's user (what a change acts on), and the read marks to send.
    newest: std::collections::HashMap<u32, MessageId>,
    newest_own: std::collections::HashMap<u32, MessageId>,
    marks: Vec<String>,
    user_id: String,
    /// Mixed workload: percent points of changes owed (a change is made at 100).
    changes_owed: u32,
}

/// The sends of a connection: its schedule (once the run goes) and the timer of the next one.
struct Sending {
    schedule: Option<Schedule>,
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

/// Open with a few quick tries; a connection that never opens is reported as failed.
async fn first_connect(w: &W, spec: &JobConn) -> Option<Connection> {
    let mut last_err = None;
    for attempt in 0..3 {
        if w.stopped() {
            break;
        }
        match w.connector.connect_from(&spec.token, source(spec)).await {
            Ok(c) => return Some(c),
            Err(e) => {
                last_err = Some(format!("{e:#}"));
                tokio::time::sleep(Duration::from_millis(300 * (attempt + 1))).await;
            }
        }
    }
    let mut s = w.stats.borrow_mut();
    s.c.failed.push(spec.idx);
    if s.c.first_error.is_none() {
        s.c.first_error = last_err;
    }
    None
}

fn source(spec: &JobConn) -> Option<IpAddr> {
    spec.source_ip.map(IpAddr::V4)
}

pub(super) async fn conn_task(w: Rc<W>, spec_idx: usize) {
    let spec = &w.job.conns[spec_idx];
    let Some(mut ws) = first_connect(&w, spec).await else {
        return;
    };
    {
        let mut s = w.stats.borrow_mut();
        s.c.open += 1;
        s.c.connected += 1;
    }
    let mut conn = Conn {
        chans: spec
            .channels
            .iter()
            .map(|c| {
                let id = w.channel_ids.get(c).map(|i| i.to_string());
                ChanState::new(*c, id.unwrap_or_default())
            })
            .collect(),
        w: w.clone(),
        spec_idx,
        outbox: Outbox::new(),
        next_send_channel: spec.sender_ordinal as usize,
        sent_n: 0,
        ping_sent: None,
        newest: Default::default(),
        newest_own: Default::default(),
        marks: Vec::new(),
        user_id: ws.user_id().to_string(),
        changes_owed: 0,
    };
    if w.job.mode == Mode::Traffic {
        // Any first frame releases the live messages the gateway holds for a `resume`.
        let _ = ws.send(&ClientFrame::Ping).await;
    }
    conn.run(ws).await;
    let mut s = w.stats.borrow_mut();
    s.c.open = s.c.open.saturating_sub(1);
    for ch in &conn.chans {
        s.c.checks.push(ch.check(spec.idx));
    }
}

impl Conn {
    fn spec(&self) -> &JobConn {
        &self.w.job.conns[self.spec_idx]
    }

    /// Until the worker stops (or a lost connection cannot be replaced).
    async fn run(&mut self, mut ws: Connection) {
        let w = self.w.clone();
        let mut go = w.go.subscribe();
        let mut stop = w.stop.subscribe();
        let mut ping = w.ping.subscribe();
        let is_sender = !self.spec().send_to.is_empty();
        let mut out = Sending {
            schedule: None,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(86400))),
            armed: false,
        };
        if *go.borrow_and_update() && is_sender {
            self.start_schedule(&mut out);
        }
        loop {
            let lost = tokio::select! {
                biased;
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        break;
                    }
                    None
                }
                _ = go.changed(), if out.schedule.is_none() && is_sender => {
                    self.start_schedule(&mut out);
                    None
                }
                _ = ping.changed() => {
                    self.ping_sent = Some(Instant::now());
                    ws.send(&ClientFrame::Ping).await.err().map(|_| "send failed".to_string())
                }
                _ = &mut out.timer, if out.armed => self.on_timer(&mut ws, &mut out).await,
                m = ws.next_text() => match m {
                    Ok(text) => self.on_text_frame(&mut ws, text.as_str()).await,
                    Err(e) => Some(lost_reason(&e)),
                },
            };
            if let Some(why) = lost {
                if !self.recover(&mut ws, &why).await {
                    break;
                }
                self.skip_missed(&mut out.schedule);
                self.arm(&mut out);
            }
        }
        self.w.stats.borrow_mut().c.unacked += self.outbox.unacked() as u64;
        ws.close(Duration::from_millis(300)).await;
    }

    fn start_schedule(&self, out: &mut Sending) {
        out.schedule = self.schedule();
        self.arm(out);
    }

    /// The send timer fired: send, re-arm. Returns why the connection is lost, if it is.
    async fn on_timer(&mut self, ws: &mut Connection, out: &mut Sending) -> Option<String> {
        if !self.w.sending.get() {
            out.armed = false;
            return None;
        }
        let sched = out.schedule.as_mut().expect("armed implies a schedule");
        let planned = sched.next().unwrap_or(0.0);
        sched.n += 1;
        let ok = self.send_one(ws, planned).await;
        self.arm(out);
        (!ok).then(|| "send failed".to_string())
    }

    /// A text frame arrived. Returns why the connection is lost, if it is.
    async fn on_text_frame(&mut self, ws: &mut Connection, text: &str) -> Option<String> {
        let again = self.on_text(text);
        for mark in std::mem::take(&mut self.marks) {
            if ws.send_text(mark).await.is_err() {
                return Some("send failed".to_string());
            }
        }
        let again = again?;
        // `unavailable`: resend with the same client_msg_id.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.w.stats.borrow_mut().c.resent += 1;
        ws.send(&again)
            .await
            .err()
            .map(|_| "send failed".to_string())
    }

    fn schedule(&self) -> Option<Schedule> {
        let plan = self.w.plan()?;
        Some(Schedule {
            plan,
            ordinal: self.spec().sender_ordinal as f64,
            senders: self.w.job.senders_total.max(1) as f64,
            step: 0,
            n: 0,
        })
    }

    fn arm(&self, out: &mut Sending) {
        out.armed = match out
            .schedule
            .as_mut()
            .and_then(|s| Some((s.next()?, s.plan.t0)))
        {
            Some((t, t0)) => {
                out.timer.as_mut().reset(t0 + Duration::from_secs_f64(t));
                true
            }
            None => false,
        };
    }

    /// After a reconnect: the sends whose time passed meanwhile are skipped, not bunched.
    fn skip_missed(&self, schedule: &mut Option<Schedule>) {
        let Some(s) = schedule.as_mut() else { return };
        let now = Instant::now();
        let mut skipped = 0;
        while let Some(t) = s.next() {
            if s.plan.t0 + Duration::from_secs_f64(t) >= now {
                break;
            }
            s.n += 1;
            skipped += 1;
        }
        if skipped > 0 {
            let step = s.step;
            self.w.stats.borrow_mut().step(step).skipped += skipped;
        }
    }

    async fn send_one(&mut self, ws: &mut Connection, planned: f64) -> bool {
        let w = self.w.clone();
        let Some(plan) = w.plan() else { return true };
        let spec = &w.job.conns[self.spec_idx];
        let now = now_ns();
        let step = plan.step_of(now);
        if self.outbox.unacked() >= w.job.max_unacked {
            w.stats.borrow_mut().step(step).skipped += 1;
            return true;
        }
        let ch_idx = spec.send_to[self.next_send_channel % spec.send_to.len()];
        self.next_send_channel += 1;
        let Some(channel) = w.channel_ids.get(&ch_idx).copied() else {
            return true;
        };
        // Changes are owed at `changes_percent` of the sends; one owed while there is no message
        // to change yet is made at a later send, so the share holds.
        self.changes_owed += w.job.mix.changes_percent;
        if self.changes_owed >= 100
            && let Some(frame) = self.change_frame(channel, ch_idx)
        {
            self.changes_owed -= 100;
            self.sent_n += 1;
            {
                let mut s = w.stats.borrow_mut();
                s.c.mixed.changes_sent += 1;
                s.step(step).sent += 1;
            }
            return ws.send_text(frame).await.is_ok();
        }
        let head = format!("{} {} {}", w.job.run_tag, spec.idx, now);
        let pad = w.job.body_bytes.saturating_sub(head.len() + 1).max(1);
        let body = format!("{head} {}", "x".repeat(pad));
        let cmid = format!("{}-{}-{}", w.job.run_tag, spec.idx, self.sent_n);
        self.sent_n += 1;
        let frame = send_frame(channel, &cmid, &body);
        self.outbox.sent(channel, cmid, body);
        {
            let mut s = w.stats.borrow_mut();
            s.c.sent += 1;
            let lag_us = now.saturating_sub(plan.t0_ns + (planned * 1e9) as u64) / 1000;
            let st = s.step(step);
            st.sent += 1;
            stats::record(&mut st.send_lag, lag_us);
            let sec = plan.second_of(now);
            s.second(sec).sent += 1;
        }
        ws.send_text(frame).await.is_ok()
    }

    /// An edit of this user's newest message in the channel (every other change) or a reaction
    /// to the channel's newest message with an emoji not used before (so never a no-op); `None`
    /// while the connection has seen no message there.
    fn change_frame(&self, channel: ChannelId, ch_idx: u32) -> Option<String> {
        let w = &self.w;
        let tag = format!("{}-{}-e{}", w.job.run_tag, self.spec().idx, self.sent_n);
        let own = self.newest_own.get(&ch_idx).copied();
        let frame = match own {
            Some(message_id) if self.sent_n.is_multiple_of(2) => ClientFrame::Edit {
                channel_id: channel,
                message_id,
                client_event_id: tag,
                body: format!("{} edited", w.job.run_tag),
            },
            _ => ClientFrame::React {
                channel_id: channel,
                message_id: *self.newest.get(&ch_idx)?,
                emoji: format!(":{}x{}:", self.spec().idx, self.sent_n),
                client_event_id: tag,
            },
        };
        Some(serde_json::to_string(&frame).expect("frames serialise"))
    }

    /// Handle a text frame. Returns a send to repeat (after `unavailable`).
    fn on_text(&mut self, text: &str) -> Option<ClientFrame> {
        let now = now_ns();
        let Ok(f) = serde_json::from_str::<FrameView>(text) else {
            self.count_error("unparsable frame");
            return None;
        };
        match f.kind.as_ref() {
            "message" => {
                if let Some(m) = f.message {
                    self.on_message(m, now);
                }
            }
            "ack" => {
                if let (Some(m), Some(cmid)) = (f.message, f.client_msg_id) {
                    self.on_ack(m, &cmid, now);
                }
            }
            "event" => {
                // Events take positions in the channel like messages: the same checks.
                let new = f.event.as_ref().is_some_and(|e| {
                    self.chans
                        .iter_mut()
                        .find(|c| c.id == e.channel_id)
                        .is_some_and(|ch| matches!(ch.observe(e.seq), Seen::New))
                });
                if let (true, Some(e)) = (new, &f.event) {
                    self.w.stats.borrow_mut().c.mixed.events_delivered += 1;
                    mark(&self.w, &mut self.marks, &e.channel_id, e.seq);
                }
            }
            "event_ack" => {
                let mut s = self.w.stats.borrow_mut();
                s.c.mixed.changes_acked += 1;
                if let Some(plan) = self.w.plan() {
                    s.step(plan.step_of(now)).acked += 1;
                }
            }
            "pong" => {
                if let Some(at) = self.ping_sent.take() {
                    let mut s = self.w.stats.borrow_mut();
                    s.c.pongs += 1;
                    stats::record(&mut s.ping, at.elapsed().as_micros() as u64);
                }
            }
            "error" => {
                let code = f.code.as_deref().unwrap_or("?").to_string();
                self.count_error(&code);
                if code == "unavailable" {
                    return self.outbox.resend_frame(f.client_msg_id.as_deref()?);
                }
            }
            _ => {}
        }
        None
    }

    fn count_error(&self, code: &str) {
        let mut s = self.w.stats.borrow_mut();
        *s.c.errors.entry(code.to_string()).or_default() += 1;
        s.c.error_total += 1;
    }

    fn on_message(&mut self, m: MessageView<'_>, now: u64) {
        let Some(ch) = self.chans.iter_mut().find(|c| c.id == m.channel_id) else {
            // A channel of this user that the run does not watch (another layout's).
            self.w.stats.borrow_mut().c.foreign += 1;
            return;
        };
        let Some(seq) = m.seq else {
            self.count_error("message without seq");
            return;
        };
        let seen = ch.observe(seq);
        let ch_idx = ch.idx;
        if matches!(seen, Seen::New)
            && let Ok(id) = m.id.parse::<MessageId>()
            && let Some(channel) = self.w.channel_ids.get(&ch_idx)
        {
            self.outbox.seen(*channel, id);
            if self.w.job.mix != Default::default() {
                self.newest.insert(ch_idx, id);
                if m.sender_id == self.user_id.as_str() {
                    self.newest_own.insert(ch_idx, id);
                }
                mark(&self.w, &mut self.marks, &m.channel_id, seq);
            }
        }
        let w = &self.w;
        let Some((sender, sent_ns, _)) = parse_body(&m.body, &w.job.run_tag) else {
            w.stats.borrow_mut().c.foreign += 1;
            return;
        };
        if matches!(seen, Seen::Duplicate) {
            return;
        }
        ch.distinct_run += 1;
        let Some(plan) = w.plan() else { return };
        let us = now.saturating_sub(sent_ns) / 1000;
        let mut s = w.stats.borrow_mut();
        s.c.delivered += 1;
        s.c.interval_delivered += 1;
        if us > w.job.slow_ms * 1000 {
            s.c.interval_slow += 1;
        }
        if sender == self.w.job.conns[self.spec_idx].idx {
            s.c.echoed += 1;
        }
        let st = s.step(plan.step_of(sent_ns));
        st.delivered += 1;
        stats::record(&mut st.e2e, us);
        let sec = s.second(plan.second_of(now));
        sec.delivered += 1;
        stats::record(&mut sec.e2e, us);
    }

    fn on_ack(&mut self, m: MessageView<'_>, cmid: &str, now: u64) {
        if !self.outbox.acked(cmid) {
            return; // a resend acked again
        }
        let w = &self.w;
        let Some(plan) = w.plan() else { return };
        let Some((_, sent_ns, _)) = parse_body(&m.body, &w.job.run_tag) else {
            return;
        };
        let ch_idx = w.channel_by_str.get(m.channel_id.as_ref()).copied();
        let conns = ch_idx
            .and_then(|i| w.channel_conns.borrow().get(&i).copied())
            .unwrap_or(0);
        let mut s = w.stats.borrow_mut();
        s.c.acked += 1;
        s.c.expected += conns;
        if let Some(i) = ch_idx {
            *s.c.acked_per_channel.entry(i).or_default() += 1;
            if w.job.collect_ids {
                s.c.acked_ids.push((i, m.id.to_string()));
            }
        }
        let st = s.step(plan.step_of(sent_ns));
        st.acked += 1;
        stats::record(&mut st.ack, now.saturating_sub(sent_ns) / 1000);
        s.second(plan.second_of(now)).acked += 1;
    }

    /// The connection dropped: in traffic mode reconnect (backoff with jitter), `resume` from
    /// the last message of each channel, and resend what was not acked. Returns false to stop.
    async fn recover(&mut self, ws: &mut Connection, why: &str) -> bool {
        let w = self.w.clone();
        {
            let mut s = w.stats.borrow_mut();
            *s.c.closes.entry(why.to_string()).or_default() += 1;
        }
        if w.stopped() {
            return false;
        }
        if !w.job.reconnect {
            w.stats.borrow_mut().c.dropped += 1;
            return false;
        }
        let spec = self.spec();
        let again = self
            .outbox
            .reconnect(&w.connector, &spec.token, source(spec), &BACKOFF, || {
                w.stopped()
            })
            .await;
        let Some((fresh, resent)) = again else {
            return false;
        };
        {
            let mut s = w.stats.borrow_mut();
            s.c.reconnects += 1;
            s.c.resent += resent as u64;
        }
        *ws = fresh;
        true
    }
}

/// Queue a read mark for a delivered position (mixed workload).
fn mark(w: &W, marks: &mut Vec<String>, channel_id: &str, seq: i64) {
    if w.job.mix.mark_read {
        marks.push(mark_frame(channel_id, seq));
        w.stats.borrow_mut().c.mixed.marks_sent += 1;
    }
}

/// A `mark_read` frame, written directly (one per delivery: no typed frame to build).
fn mark_frame(channel_id: &str, seq: i64) -> String {
    format!(r#"{{"type":"mark_read","channel_id":"{channel_id}","seq":{seq}}}"#)
}

fn send_frame(channel: ChannelId, cmid: &str, body: &str) -> String {
    serde_json::to_string(&ClientFrame::Send {
        channel_id: channel,
        client_msg_id: cmid.to_string(),
        body: body.to_string(),
        reply_to: None,
        attachments: Vec::new(),
    })
    .expect("frames serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_marks_are_valid_frames() {
        let c = ChannelId(uuid::Uuid::from_u128(5));
        let f: ClientFrame = serde_json::from_str(&mark_frame(&c.to_string(), 42)).unwrap();
        assert_eq!(
            f,
            ClientFrame::MarkRead {
                channel_id: c,
                seq: 42
            }
        );
    }

    #[test]
    fn bodies_carry_sender_and_time() {
        assert_eq!(
            parse_body("run1 17 123456 xxxx", "run1"),
            Some((17, 123456, "xxxx"))
        );
        assert_eq!(parse_body("other 17 123456 xxxx", "run1"), None);
        assert_eq!(parse_body("run1 x", "run1"), None);
    }
}
