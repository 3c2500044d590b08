//! What the stand-in received: every request with the answer it was given, filed by device
//! token in arrival order, and counters over all requests.
//!
//! Bounded: at most `per_token` records per token and `total` over all tokens; past either
//! bound the oldest records go first (counted in `evicted`). With APNs-sized requests (a JWT,
//! a few headers, a payload of a few hundred bytes) the default 200,000 records take a few
//! hundred MB at most.
//!
//! A request is recorded when its answer is decided, before any scripted delay: its `state`
//! is `pending` while the delay runs, then `answered` (the answer was handed to HTTP/2) or
//! `dropped` (the stream or connection ended first, e.g. by `POST /cut`).

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Pending,
    Answered,
    Dropped,
}

/// One request as `GET /tokens/{token}/requests` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Recorded {
    /// Arrival, wall clock, µs since the Unix epoch.
    pub received_at_us: u64,
    pub method: String,
    pub path: String,
    /// Lower-case names; a repeated header's values joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The payload parsed as JSON; `null` when empty, too large or not JSON.
    pub body: serde_json::Value,
    pub status: u16,
    /// `null` for 200.
    pub reason: Option<String>,
    /// The `apns-id` header of the answer.
    pub apns_id: String,
    /// The scripted delay before the answer.
    pub delay_ms: u64,
    pub state: RequestState,
}

/// Where a record is, to update its state later.
#[derive(Clone, Debug)]
pub struct RecordId {
    token: Arc<str>,
    seq: u64,
}

/// `GET /stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Requests answered (or decided) so far, by status.
    pub by_status: BTreeMap<u16, u64>,
    pub total_requests: u64,
    /// Requests in the handler now (including scripted delays).
    pub in_flight: u64,
    /// The most requests in the handler at once since start (or the last reset).
    pub max_in_flight: u64,
    /// Records kept now, and dropped for the bounds.
    pub recorded: u64,
    pub evicted: u64,
    /// TLS connections open now.
    pub open_connections: u64,
    /// `POST /cut`s so far.
    pub cuts: u64,
}

pub struct Recorder {
    per_token: HashMap<Arc<str>, VecDeque<(u64, Recorded)>>,
    /// Every kept record by sequence number: the oldest over all tokens comes first.
    order: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
    max_per_token: usize,
    max_total: usize,
    by_status: BTreeMap<u16, u64>,
    total_requests: u64,
    evicted: u64,
}

impl Recorder {
    pub fn new(max_per_token: usize, max_total: usize) -> Self {
        Self {
            per_token: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            max_per_token: max_per_token.max(1),
            max_total: max_total.max(1),
            by_status: BTreeMap::new(),
            total_requests: 0,
            evicted: 0,
        }
    }

    /// Count an answer that is not filed under a token (no token in the path).
    pub fn count(&mut self, status: u16) {
        *self.by_status.entry(status).or_default() += 1;
        self.total_requests += 1;
    }

    /// Count and file a request under `token`.
    pub fn record(&mut self, token: &str, rec: Recorded) -> RecordId {
        self.count(rec.status);
        let seq = self.next_seq;
        self.next_seq += 1;
        let key: Arc<str> = match self.per_token.get_key_value(token) {
            Some((k, _)) => k.clone(),
            None => token.into(),
        };
        let list = self.per_token.entry(key.clone()).or_default();
        list.push_back((seq, rec));
        if list.len() > self.max_per_token
            && let Some((old, _)) = list.pop_front()
        {
            self.order.remove(&old);
            self.evicted += 1;
        }
        self.order.insert(seq, key.clone());
        while self.order.len() > self.max_total {
            let Some((old, owner)) = self.order.pop_first() else {
                break;
            };
            if let Some(list) = self.per_token.get_mut(&owner) {
                // The oldest overall is the oldest of its token.
                list.pop_front();
                if list.is_empty() {
                    self.per_token.remove(&owner);
                }
            }
            self.evicted += 1;
            debug_assert!(old < seq);
        }
        RecordId { token: key, seq }
    }

    /// Set the state of a record, if it is still kept.
    pub fn set_state(&mut self, id: &RecordId, state: RequestState) {
        if let Some(list) = self.per_token.get_mut(&id.token)
            && let Ok(i) = list.binary_search_by_key(&id.seq, |(seq, _)| *seq)
        {
            list[i].1.state = state;
        }
    }

    pub fn requests(&self, token: &str) -> Vec<Recorded> {
        self.per_token
            .get(token)
            .map(|list| list.iter().map(|(_, r)| r.clone()).collect())
            .unwrap_or_default()
    }

    pub fn forget(&mut self, token: &str) {
        if let Some(list) = self.per_token.remove(token) {
            for (seq, _) in list {
                self.order.remove(&seq);
            }
        }
    }

    /// Fill in the recorder's part of `stats`.
    pub fn fill(&self, stats: &mut Stats) {
        stats.by_status = self.by_status.clone();
        stats.total_requests = self.total_requests;
        stats.recorded = self.order.len() as u64;
        stats.evicted = self.evicted;
    }

    /// Zero the counters (the records stay).
    pub fn reset_counters(&mut self) {
        self.by_status.clear();
        self.total_requests = 0;
        self.evicted = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(status: u16) -> Recorded {
        Recorded {
            received_at_us: 1,
            method: "POST".into(),
            path: "/3/device/aa".into(),
            headers: BTreeMap::new(),
            body: serde_json::Value::Null,
            status,
            reason: None,
            apns_id: "id".into(),
            delay_ms: 0,
            state: RequestState::Answered,
        }
    }

    #[test]
    fn records_are_listed_per_token_in_arrival_order_and_counted() {
        let mut r = Recorder::new(10, 100);
        r.record("aa", rec(200));
        r.record("bb", rec(410));
        r.record("aa", rec(429));
        r.count(404);
        let aa: Vec<u16> = r.requests("aa").iter().map(|x| x.status).collect();
        assert_eq!(aa, [200, 429]);
        let mut s = Stats::default();
        r.fill(&mut s);
        assert_eq!(s.total_requests, 4);
        assert_eq!(s.by_status[&404], 1);
        assert_eq!(s.recorded, 3);
        r.forget("aa");
        assert!(r.requests("aa").is_empty());
        r.fill(&mut s);
        assert_eq!(s.recorded, 1);
    }

    #[test]
    fn the_oldest_records_go_first_past_either_bound() {
        let mut r = Recorder::new(3, 5);
        for status in 1..=4 {
            r.record("aa", rec(status));
        }
        let aa: Vec<u16> = r.requests("aa").iter().map(|x| x.status).collect();
        assert_eq!(aa, [2, 3, 4], "per token");
        for status in 10..=12 {
            r.record("bb", rec(status));
        }
        // 6 kept > 5 in total: the oldest overall (aa's 2) goes.
        let aa: Vec<u16> = r.requests("aa").iter().map(|x| x.status).collect();
        assert_eq!(aa, [3, 4]);
        assert_eq!(r.requests("bb").len(), 3);
        let mut s = Stats::default();
        r.fill(&mut s);
        assert_eq!((s.recorded, s.evicted), (5, 2));
    }

    #[test]
    fn a_pending_record_can_be_marked_answered_or_dropped() {
        let mut r = Recorder::new(10, 10);
        let id = r.record(
            "aa",
            Recorded {
                state: RequestState::Pending,
                ..rec(200)
            },
        );
        let other = r.record(
            "aa",
            Recorded {
                state: RequestState::Pending,
                ..rec(200)
            },
        );
        r.set_state(&id, RequestState::Dropped);
        r.set_state(&other, RequestState::Answered);
        let states: Vec<_> = r.requests("aa").iter().map(|x| x.state).collect();
        assert_eq!(states, [RequestState::Dropped, RequestState::Answered]);
        r.forget("aa");
        r.set_state(&id, RequestState::Answered); // gone: nothing to do
    }
}
