//! The ordering logic of one connection, apart from the socket: everything queued for the
//! client goes in ([`Sequencer::offer`]), and what comes out ([`Sequencer::next_step`]) is the exact
//! sequence of frames to write, with the history reads needed in between. It is what makes
//! delivery exactly once and in order per channel:
//! - a message at or below the last position sent in its channel is a replay: dropped;
//! - a message past the next position means pushes were missed: the gap is read from history
//!   first ([`Step::Fetch`], answered by [`Sequencer::fetched`]);
//! - live messages are held after `ready` until the client's first frame (or a time limit), so
//!   a `resume` sent right after connecting is served before them;
//! - `resume` and `resync` send everything after a position, then go on live;
//! - a client that announced its `resume` at the upgrade (`?resume=1`) is held without a time
//!   limit; a `resume` that arrives after the hold ended anyway (a client that did not announce
//!   it, slower than the limit) still gets every message it missed: those older than the live
//!   ones already written follow late (a "backfill", out of order) rather than never.

use crate::hub::{LiveMessage, Outbound};
use axum::extract::ws::Utf8Bytes;
use chat_types::ChannelId;
use chat_types::bus::MembershipChange;
use chat_types::events::ChannelItem;
use chat_types::ws::{ServerFrame, close};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Catch-up and gap-fill read this many messages per history query.
pub const HISTORY_PAGE: i64 = 100;

/// What the connection's writer does next.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Write this text frame.
    Write(Utf8Bytes),
    /// Read at most `limit` messages of `channel` after position `after` from history, oldest
    /// first, and hand them to [`Sequencer::fetched`] (or call [`Sequencer::fetch_failed`]).
    Fetch {
        channel: ChannelId,
        after: i64,
        limit: i64,
    },
    /// Close the connection with this code; nothing more is to be written.
    Close(u16),
}

/// Work in hand, in order. Compound items (a gap, a resume) unfold into these at the front.
#[derive(Debug)]
enum Work {
    Item(Outbound),
    /// Send the channel's messages after `after`, up to `until` (or the newest).
    CatchUp {
        channel: ChannelId,
        after: i64,
        until: Option<i64>,
    },
    /// A live message whose gap was just filled: sent unless the fill already covered it.
    AfterFill(Arc<LiveMessage>),
    /// Send the channel's messages after `after` up to `until` without moving the channel's
    /// position: what a late `resume` missed below the live messages already written.
    Backfill {
        channel: ChannelId,
        after: i64,
        until: i64,
    },
    Write(Utf8Bytes),
    Release,
}

/// A history read in progress.
#[derive(Debug)]
struct Fetching {
    channel: ChannelId,
    after: i64,
    until: Option<i64>,
    limit: i64,
    /// A [`Work::Backfill`] page: the channel's position stays where it is.
    backfill: bool,
}

#[derive(Debug)]
pub struct Sequencer {
    /// Per channel, the last position this connection was sent.
    last: HashMap<ChannelId, i64>,
    /// Channels whose first message on this connection was a live one, with no position known
    /// from the client yet: the seq of that first message. A later `resume` below it backfills.
    unanchored: HashMap<ChannelId, i64>,
    /// The client announced a `resume` at the upgrade: no time limit on the hold.
    resume_announced: bool,
    /// Live items wait in `held` until the client's first frame or the hold time ends.
    holding: bool,
    /// The first frame was a `resume` still being looked up: hold until it is served.
    resume_pending: bool,
    held: VecDeque<Outbound>,
    /// More held items than this: the client is not keeping up; close it.
    hold_max: usize,
    work: VecDeque<Work>,
    fetching: Option<Fetching>,
    closed: bool,
}

pub fn frame(f: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(f).expect("frames serialise"))
}

impl Sequencer {
    /// `resume_announced`: the client said at the upgrade that its first frame is a `resume`,
    /// so live messages are held until that frame however long it takes.
    pub fn new(hold_max: usize, resume_announced: bool) -> Self {
        Sequencer {
            last: HashMap::new(),
            unanchored: HashMap::new(),
            resume_announced,
            holding: true,
            resume_pending: false,
            held: VecDeque::new(),
            hold_max,
            work: VecDeque::new(),
            fetching: None,
            closed: false,
        }
    }

    /// Queue an item; it takes effect, in order, through [`Sequencer::next_step`].
    pub fn offer(&mut self, item: Outbound) {
        self.work.push_back(Work::Item(item));
    }

    /// Whether the hold-time limit still matters (live items held, no resume being prepared).
    pub fn waits_for_hold_timer(&self) -> bool {
        self.holding && !self.resume_pending && !self.resume_announced
    }

    /// The hold time after `ready` is over: go live.
    pub fn hold_expired(&mut self) {
        if self.waits_for_hold_timer() {
            self.work.push_back(Work::Release);
        }
    }

    /// The next step, or `None` when there is nothing to do (or a fetch awaits its answer).
    pub fn next_step(&mut self) -> Option<Step> {
        while !self.closed && self.fetching.is_none() {
            let step = match self.work.pop_front()? {
                Work::Write(f) => Some(Step::Write(f)),
                Work::Item(item) => self.apply(item),
                Work::AfterFill(live) => self.write_live(&live),
                Work::Release => {
                    self.release();
                    None
                }
                Work::CatchUp {
                    channel,
                    after,
                    until,
                } => self.catch_up(channel, after, until),
                Work::Backfill {
                    channel,
                    after,
                    until,
                } => self.backfill(channel, after, until),
            };
            if let Some(step) = step {
                if matches!(step, Step::Close(_)) {
                    self.closed = true;
                    self.work.clear();
                }
                return Some(step);
            }
        }
        None
    }

    /// The answer to a [`Step::Fetch`]: what is at those positions (messages and channel
    /// events), oldest first.
    pub fn fetched(&mut self, page: Vec<ChannelItem>) {
        let Some(f) = self.fetching.take() else {
            return;
        };
        let mut full = page.len() as i64 >= f.limit;
        let mut after = f.after;
        let mut unfolded: Vec<Work> = Vec::with_capacity(page.len() + 1);
        for item in page {
            // Only the unbroken run of positions counts. A message server stores a batch in
            // several concurrent writes, so a read racing it (a catch-up reaching the newest
            // messages) can see later rows before earlier ones; sending past such a hole would
            // make the missing ones look like replays when their push comes. They are pushed
            // once their whole batch is stored, and arrive live, in order.
            let seq = item.seq();
            if seq != after + 1 {
                metrics::counter!("chat_history_holes_total").increment(1);
                full = false;
                break;
            }
            after = seq;
            unfolded.push(Work::Write(frame(&item.into_frame())));
        }
        if f.backfill {
            if full && let Some(until) = f.until {
                unfolded.push(Work::Backfill {
                    channel: f.channel,
                    after,
                    until,
                });
            }
            self.push_front(unfolded);
            return;
        }
        self.last.insert(f.channel, after);
        if full {
            unfolded.push(Work::CatchUp {
                channel: f.channel,
                after,
                until: f.until,
            });
        }
        self.push_front(unfolded);
    }

    /// History could not be read: close with 1013 rather than send anything past a gap; the
    /// client resumes exactly where it was.
    pub fn fetch_failed(&mut self) -> Step {
        self.fetching = None;
        self.closed = true;
        self.work.clear();
        Step::Close(close::TRY_AGAIN_LATER)
    }

    fn apply(&mut self, item: Outbound) -> Option<Step> {
        match item {
            Outbound::Live(_) | Outbound::Membership(_) if self.holding => {
                if self.held.len() >= self.hold_max {
                    return Some(Step::Close(close::SLOW_CONSUMER));
                }
                self.held.push_back(item);
                None
            }
            Outbound::Live(live) => match self.last.get(&live.channel).copied() {
                Some(last) if live.seq > last + 1 => {
                    metrics::counter!("chat_gaps_filled_total").increment(1);
                    let channel = live.channel;
                    let until = Some(live.seq - 1);
                    self.push_front(vec![
                        Work::CatchUp {
                            channel,
                            after: last,
                            until,
                        },
                        Work::AfterFill(live),
                    ]);
                    None
                }
                _ => self.write_live(&live),
            },
            Outbound::Membership(note) => {
                match note.change {
                    MembershipChange::Joined => {
                        self.last.entry(note.channel).or_insert(note.seq);
                    }
                    MembershipChange::Left => {
                        self.last.remove(&note.channel);
                        self.unanchored.remove(&note.channel);
                    }
                }
                None
            }
            Outbound::Frame(f) => Some(Step::Write(f.into())),
            Outbound::Resume { channels } => {
                let mut unfolded = Vec::with_capacity(channels.len() + 2);
                for (channel, after) in &channels {
                    let first_live = self.unanchored.remove(channel);
                    let from = match self.last.get(channel).copied() {
                        Some(last) => last.max(*after),
                        None => *after,
                    };
                    // Live messages of this channel were written before the client said where
                    // it was (the hold ended first): what lies between its position and the
                    // first of them is sent now, late, rather than lost.
                    if let Some(first) = first_live
                        && *after < first - 1
                    {
                        metrics::counter!("chat_late_resume_backfills_total").increment(1);
                        unfolded.push(Work::Backfill {
                            channel: *channel,
                            after: *after,
                            until: first - 1,
                        });
                    }
                    self.last.insert(*channel, from);
                    unfolded.push(Work::CatchUp {
                        channel: *channel,
                        after: from,
                        until: None,
                    });
                }
                let resumed = ServerFrame::Resumed {
                    channels: channels.iter().map(|(c, _)| *c).collect(),
                };
                unfolded.push(Work::Write(frame(&resumed)));
                unfolded.push(Work::Release);
                self.push_front(unfolded);
                None
            }
            Outbound::ResumePending => {
                self.resume_pending = true;
                None
            }
            Outbound::GoLive => {
                self.release();
                None
            }
            Outbound::Resync => {
                let known: Vec<Work> = self
                    .last
                    .iter()
                    .map(|(c, s)| Work::CatchUp {
                        channel: *c,
                        after: *s,
                        until: None,
                    })
                    .collect();
                self.push_front(known);
                None
            }
        }
    }

    /// Write a live message unless it is a replay (at or below the last position sent).
    fn write_live(&mut self, live: &LiveMessage) -> Option<Step> {
        match self.last.get(&live.channel) {
            Some(l) if live.seq <= *l => {
                metrics::counter!("chat_replays_dropped_total").increment(1);
                return None;
            }
            Some(_) => {}
            None => {
                self.unanchored.insert(live.channel, live.seq);
            }
        }
        self.last.insert(live.channel, live.seq);
        Some(Step::Write(live.frame.clone()))
    }

    fn catch_up(&mut self, channel: ChannelId, after: i64, until: Option<i64>) -> Option<Step> {
        let limit = match until {
            Some(u) if u <= after => return None,
            Some(u) => (u - after).min(HISTORY_PAGE),
            None => HISTORY_PAGE,
        };
        self.fetching = Some(Fetching {
            channel,
            after,
            until,
            limit,
            backfill: false,
        });
        Some(Step::Fetch {
            channel,
            after,
            limit,
        })
    }

    fn backfill(&mut self, channel: ChannelId, after: i64, until: i64) -> Option<Step> {
        if until <= after {
            return None;
        }
        let limit = (until - after).min(HISTORY_PAGE);
        self.fetching = Some(Fetching {
            channel,
            after,
            until: Some(until),
            limit,
            backfill: true,
        });
        Some(Step::Fetch {
            channel,
            after,
            limit,
        })
    }

    /// Go live: held items are handled next, before anything queued after them.
    fn release(&mut self) {
        self.resume_pending = false;
        if !self.holding {
            return;
        }
        self.holding = false;
        let held: Vec<Work> = self.held.drain(..).map(Work::Item).collect();
        self.push_front(held);
    }

    /// Put `items` at the front of the work, keeping their order.
    fn push_front(&mut self, items: Vec<Work>) {
        for w in items.into_iter().rev() {
            self.work.push_front(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::MembershipNote;
    use chat_types::Message;
    use chat_types::{MessageId, UserId};

    fn chan(n: u128) -> ChannelId {
        ChannelId(uuid::Uuid::from_u128(n))
    }

    fn message(c: ChannelId, seq: i64) -> Message {
        Message::new(
            MessageId(uuid::Uuid::from_u128(seq as u128)),
            c,
            UserId(uuid::Uuid::from_u128(7)),
            format!("m{seq}"),
            format!("c{seq}"),
            chrono::DateTime::from_timestamp_millis(0).unwrap(),
            Some(seq),
        )
    }

    /// What history holds at `seq`: every position divisible by 5 is a channel event (an
    /// edit of the message before it), the rest are messages.
    fn item(c: ChannelId, seq: i64) -> ChannelItem {
        if seq % 5 != 0 {
            return ChannelItem::Message(message(c, seq));
        }
        ChannelItem::Event(chat_types::events::ChannelEvent {
            id: chat_types::EventId(uuid::Uuid::from_u128(seq as u128)),
            channel_id: c,
            seq,
            actor_id: UserId(uuid::Uuid::from_u128(7)),
            message_id: MessageId(uuid::Uuid::from_u128(seq as u128 - 1)),
            message_seq: seq - 1,
            client_event_id: format!("e{seq}"),
            created_at: chrono::DateTime::from_timestamp_millis(0).unwrap(),
            change: chat_types::events::Change::Edited {
                body: "e".into(),
                mentions: Vec::new(),
            },
        })
    }

    fn live(c: ChannelId, seq: i64) -> Outbound {
        Outbound::Live(Arc::new(LiveMessage {
            channel: c,
            seq,
            frame: frame(&ServerFrame::Message {
                message: message(c, seq),
            }),
        }))
    }

    fn text(s: &str) -> Outbound {
        Outbound::Frame(s.to_owned())
    }

    /// Run every step against a history of `stored` positions per channel; returns what the
    /// client would see: "c<channel>:<seq>" for messages, the text of other frames,
    /// "fetch" counts and "close <code>".
    struct Driver {
        seq: Sequencer,
        stored: HashMap<ChannelId, i64>,
        /// Positions stored but not visible to reads yet (a batch being written).
        invisible: Vec<(ChannelId, i64)>,
        fail_reads: bool,
        fetches: usize,
    }

    impl Driver {
        fn new() -> Self {
            Driver {
                seq: Sequencer::new(4, false),
                stored: HashMap::new(),
                invisible: Vec::new(),
                fail_reads: false,
                fetches: 0,
            }
        }

        fn run(&mut self) -> Vec<String> {
            let mut seen = Vec::new();
            while let Some(step) = self.seq.next_step() {
                match step {
                    Step::Write(f) => seen.push(describe(f.as_str())),
                    Step::Fetch {
                        channel,
                        after,
                        limit,
                    } => {
                        self.fetches += 1;
                        if self.fail_reads {
                            let Step::Close(code) = self.seq.fetch_failed() else {
                                unreachable!()
                            };
                            seen.push(format!("close {code}"));
                            continue;
                        }
                        let head = self.stored.get(&channel).copied().unwrap_or(0);
                        let page = ((after + 1)..=head.min(after + limit))
                            .filter(|s| !self.invisible.contains(&(channel, *s)))
                            .map(|s| item(channel, s))
                            .collect();
                        self.seq.fetched(page);
                    }
                    Step::Close(code) => seen.push(format!("close {code}")),
                }
            }
            seen
        }
    }

    fn describe(f: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(f).unwrap_or_default();
        match v["type"].as_str() {
            Some("event") => {
                let c = v["event"]["channel_id"].as_str().unwrap();
                format!(
                    "c{}:{}",
                    uuid::Uuid::parse_str(c).unwrap().as_u128(),
                    v["event"]["seq"]
                )
            }
            Some("message") => {
                let c = v["message"]["channel_id"].as_str().unwrap();
                format!(
                    "c{}:{}",
                    uuid::Uuid::parse_str(c).unwrap().as_u128(),
                    v["message"]["seq"]
                )
            }
            Some("resumed") => "resumed".into(),
            _ => f.to_owned(),
        }
    }

    #[test]
    fn live_messages_wait_for_the_first_frame_but_other_frames_do_not() {
        let mut d = Driver::new();
        d.seq.offer(text("ready"));
        d.seq.offer(live(chan(1), 1));
        d.seq.offer(text("ack"));
        assert_eq!(d.run(), ["ready", "ack"]);
        d.seq.offer(Outbound::GoLive);
        assert_eq!(d.run(), ["c1:1"]);
    }

    #[test]
    fn the_hold_ends_when_its_time_is_up_unless_a_resume_is_being_prepared() {
        let mut d = Driver::new();
        d.seq.offer(live(chan(1), 1));
        d.seq.hold_expired();
        assert_eq!(d.run(), ["c1:1"]);

        let mut d = Driver::new();
        d.seq.offer(Outbound::ResumePending);
        d.seq.offer(live(chan(1), 1));
        assert!(d.run().is_empty());
        assert!(!d.seq.waits_for_hold_timer());
        d.seq.hold_expired();
        assert!(d.run().is_empty(), "a pending resume keeps the hold");
    }

    #[test]
    fn replays_are_dropped_and_order_is_kept_per_channel() {
        let mut d = Driver::new();
        d.seq.offer(Outbound::GoLive);
        for (c, s) in [(1, 1), (2, 1), (1, 1), (1, 2), (2, 1), (2, 2), (1, 2)] {
            d.seq.offer(live(chan(c), s));
        }
        assert_eq!(d.run(), ["c1:1", "c2:1", "c1:2", "c2:2"]);
        assert_eq!(d.fetches, 0);
    }

    #[test]
    fn a_gap_is_filled_from_history_before_the_message_after_it() {
        let mut d = Driver::new();
        d.stored.insert(chan(1), 4);
        d.seq.offer(Outbound::GoLive);
        d.seq.offer(live(chan(1), 1));
        d.seq.offer(live(chan(1), 4));
        d.seq.offer(live(chan(1), 3));
        assert_eq!(d.run(), ["c1:1", "c1:2", "c1:3", "c1:4"]);
    }

    #[test]
    fn a_gap_that_history_cannot_fill_yet_does_not_hold_back_the_live_message() {
        let mut d = Driver::new();
        d.stored.insert(chan(1), 1);
        d.seq.offer(Outbound::GoLive);
        d.seq.offer(live(chan(1), 1));
        d.seq.offer(live(chan(1), 3));
        assert_eq!(d.run(), ["c1:1", "c1:3"]);
    }

    #[test]
    fn resume_sends_everything_after_the_position_then_resumed_then_the_held_live_ones() {
        let mut d = Driver::new();
        d.stored.insert(chan(1), 5);
        d.seq.offer(Outbound::ResumePending);
        d.seq.offer(live(chan(1), 5));
        d.seq.offer(live(chan(1), 6));
        assert!(d.run().is_empty());
        d.stored.insert(chan(1), 6);
        d.seq.offer(Outbound::Resume {
            channels: vec![(chan(1), 2)],
        });
        assert_eq!(d.run(), ["c1:3", "c1:4", "c1:5", "c1:6", "resumed"]);
    }

    #[test]
    fn a_long_catch_up_is_read_in_pages_and_arrives_whole_and_in_order() {
        let mut d = Driver::new();
        d.stored.insert(chan(1), 250);
        d.seq.offer(Outbound::Resume {
            channels: vec![(chan(1), 0)],
        });
        let seen = d.run();
        let expected: Vec<String> = (1..=250)
            .map(|s| format!("c1:{s}"))
            .chain(["resumed".to_string()])
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(d.fetches, 3);
    }

    #[test]
    fn a_history_failure_closes_with_1013_and_sends_nothing_past_the_gap() {
        let mut d = Driver::new();
        d.stored.insert(chan(1), 3);
        d.seq.offer(Outbound::GoLive);
        d.seq.offer(live(chan(1), 1));
        d.seq.offer(live(chan(1), 3));
        d.seq.offer(text("ack"));
        d.fail_reads = true;
        assert_eq!(d.run(), ["c1:1", "close 1013"]);
        d.seq.offer(text("late"));
        assert!(d.run().is_empty(), "nothing is written after a close");
    }

    #[test]
    fn a_client_that_lets_held_messages_pile_up_is_closed_as_a_slow_consumer() {
        let mut d = Driver::new();
        for s in 1..=5 {
            d.seq.offer(live(chan(1), s));
        }
        assert_eq!(d.run(), ["close 4408"]);
    }

    #[test]
    fn resync_sends_what_was_missed_in_every_known_channel() {
        let mut d = Driver::new();
        d.seq.offer(Outbound::GoLive);
        d.seq.offer(live(chan(1), 1));
        d.seq.offer(live(chan(2), 7));
        assert_eq!(d.run(), ["c1:1", "c2:7"]);
        d.stored.insert(chan(1), 3);
        d.stored.insert(chan(2), 8);
        d.seq.offer(Outbound::Resync);
        let mut seen = d.run();
        seen.sort();
        assert_eq!(seen, ["c1:2", "c1:3", "c2:8"]);
    }

    #[test]
    fn a_join_sets_the_starting_position_and_a_leave_forgets_the_channel() {
        let mut d = Driver::new();
        d.stored.insert(chan(1), 5);
        d.seq.offer(Outbound::GoLive);
        let note = |change, seq| {
            Outbound::Membership(Arc::new(MembershipNote {
                channel: chan(1),
                change,
                seq,
            }))
        };
        d.seq.offer(note(MembershipChange::Joined, 3));
        d.seq.offer(live(chan(1), 5));
        assert_eq!(d.run(), ["c1:4", "c1:5"]);
        d.seq.offer(note(MembershipChange::Left, 5));
        d.seq.offer(live(chan(1), 9));
        assert_eq!(d.run(), ["c1:9"]);
        assert_eq!(d.fetches, 1);
    }

    #[test]
    fn an_announced_resume_is_waited_for_without_a_time_limit() {
        let mut d = Driver::new();
        d.seq = Sequencer::new(4, true);
        d.stored.insert(chan(1), 3);
        d.seq.offer(live(chan(1), 3));
        assert!(!d.seq.waits_for_hold_timer());
        d.seq.hold_expired();
        assert!(d.run().is_empty(), "held until the resume");
        d.seq.offer(Outbound::ResumePending);
        d.seq.offer(Outbound::Resume {
            channels: vec![(chan(1), 1)],
        });
        assert_eq!(d.run(), ["c1:2", "c1:3", "resumed"]);
    }

    #[test]
    fn a_resume_after_the_hold_ended_still_gets_what_it_missed_below_the_live_ones() {
        let mut d = Driver::new();
        d.stored.insert(chan(1), 250);
        d.stored.insert(chan(2), 4);
        d.seq.offer(live(chan(1), 240));
        d.seq.offer(live(chan(2), 4));
        d.seq.hold_expired();
        assert_eq!(d.run(), ["c1:240", "c2:4"]);
        d.seq.offer(live(chan(1), 241));
        d.seq.offer(Outbound::Resume {
            channels: vec![(chan(1), 10), (chan(2), 3)],
        });
        let seen = d.run();
        let expected: Vec<String> = ["c1:241".to_string()]
            .into_iter()
            .chain((11..=239).map(|s| format!("c1:{s}")))
            .chain((242..=250).map(|s| format!("c1:{s}")))
            .chain(["resumed".to_string()])
            .collect();
        assert_eq!(seen, expected, "nothing missing, nothing twice");
        d.seq.offer(live(chan(1), 250));
        d.seq.offer(live(chan(1), 251));
        assert_eq!(d.run(), ["c1:251"]);
    }

    #[test]
    fn a_catch_up_stops_at_a_position_not_visible_yet_and_live_delivery_brings_the_rest() {
        let mut d = Driver::new();
        d.seq = Sequencer::new(100, true);
        d.stored.insert(chan(1), 5);
        // 3 is being written while 4 and 5 are already readable.
        d.invisible.push((chan(1), 3));
        d.seq.offer(Outbound::ResumePending);
        d.seq.offer(Outbound::Resume {
            channels: vec![(chan(1), 1)],
        });
        assert_eq!(d.run(), ["c1:2", "resumed"]);
        d.invisible.clear();
        for s in 3..=5 {
            d.seq.offer(live(chan(1), s));
        }
        assert_eq!(
            d.run(),
            ["c1:3", "c1:4", "c1:5"],
            "nothing taken for a replay"
        );
    }
}
