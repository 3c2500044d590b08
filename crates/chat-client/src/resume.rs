//! Surviving a lost connection, as `docs/protocol.md` ("Reconnect and resume") tells clients:
//! reconnect with exponential backoff and jitter, send `resume` first with the last message seen
//! per channel, then resend every unacked send with its original `client_msg_id` (the server
//! acks a resend with the original message, so nothing is stored twice).

use crate::Result;
use crate::ws::{Connection, Connector};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chat_types::ws::{ClientFrame, ServerFrame};
use chat_types::{ChannelId, MessageId};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

/// Reconnect delays: `first`, doubling up to `max`, each with up to as much again of random
/// jitter so that the clients of a dead gateway do not all come back in the same instant.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// What the protocol suggests to apps: 0.5 s doubling to 30 s.
    pub const APP: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }

    /// The delays of one outage, without end.
    pub fn delays(&self) -> ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }
}

struct Pending {
    /// Sends are resent in the order they were first made.
    order: u64,
    channel: ChannelId,
    body: String,
}

/// What one logical session keeps across its connections: the sends not acked yet, and the
/// last message seen in each channel.
#[derive(Default)]
pub struct Outbox {
    unacked: HashMap<String, Pending>,
    sends: u64,
    last_seen: HashMap<ChannelId, MessageId>,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Remember a send until it is acked.
    pub fn sent(&mut self, channel: ChannelId, client_msg_id: String, body: String) {
        self.sends += 1;
        let order = self.sends;
        self.unacked.insert(
            client_msg_id,
            Pending {
                order,
                channel,
                body,
            },
        );
    }

    /// Forget an acked send; false if it was not (or no longer) waiting, as for a resend's
    /// second ack.
    pub fn acked(&mut self, client_msg_id: &str) -> bool {
        self.unacked.remove(client_msg_id).is_some()
    }

    /// Sends still waiting for their ack.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// The same send again, as after an `unavailable` error (`None` if it was acked meanwhile).
    pub fn resend_frame(&self, client_msg_id: &str) -> Option<ClientFrame> {
        self.unacked.get(client_msg_id).map(|p| ClientFrame::Send {
            channel_id: p.channel,
            client_msg_id: client_msg_id.to_string(),
            body: p.body.clone(),
            reply_to: None,
            attachments: Vec::new(),
        })
    }

    /// Note the id of a `message` frame (or a history message): `resume` starts after it.
    pub fn seen(&mut self, channel: ChannelId, message: MessageId) {
        self.last_seen.insert(channel, message);
    }

    pub fn last_seen(&self, channel: ChannelId) -> Option<MessageId> {
        self.last_seen.get(&channel).copied()
    }

    /// Keep the books from a server frame: a `message` is seen, an `ack` clears its send.
    pub fn observe(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Message { message } => self.seen(message.channel_id, message.id),
            // `resume` may name an event as well: it has a position like a message.
            ServerFrame::Event { event } => self.seen(event.channel_id, MessageId(event.id.0)),
            ServerFrame::Ack { client_msg_id, .. } => {
                self.acked(client_msg_id);
            }
            _ => {}
        }
    }

    /// The first frame on a new connection: `resume` for the channels with a message seen, or a
    /// `ping` when there are none (any first frame releases the live messages the gateway holds
    /// back for a `resume`).
    pub fn resume_frame(&self) -> ClientFrame {
        if self.last_seen.is_empty() {
            return ClientFrame::Ping;
        }
        let channels: BTreeMap<ChannelId, MessageId> =
            self.last_seen.iter().map(|(c, m)| (*c, *m)).collect();
        ClientFrame::Resume { channels }
    }

    /// Make a fresh connection continue the session: `resume`, then every unacked send again.
    /// Returns how many sends were repeated.
    pub async fn replay(&self, conn: &mut Connection) -> Result<usize> {
        conn.send(&self.resume_frame()).await?;
        let mut pending: Vec<(&String, &Pending)> = self.unacked.iter().collect();
        pending.sort_by_key(|(_, p)| p.order);
        for (cmid, p) in &pending {
            conn.send_message(p.channel, cmid, &p.body).await?;
        }
        Ok(pending.len())
    }

    /// After a lost connection: wait a backoff delay, connect, [`Outbox::replay`]; again until
    /// that works. A connection whose replay failed is dropped, never adopted. `None` once
    /// `stop()` says so (checked before every attempt).
    pub async fn reconnect(
        &self,
        connector: &Connector,
        token: &str,
        source: Option<IpAddr>,
        backoff: &Backoff,
        stop: impl Fn() -> bool,
    ) -> Option<(Connection, usize)> {
        for delay in backoff.delays() {
            if stop() {
                return None;
            }
            tokio::time::sleep(delay).await;
            if stop() {
                return None;
            }
            // Announce the resume at the upgrade when there is one, so the gateway holds live
            // messages for it however long it takes to arrive.
            let opened = if self.last_seen.is_empty() {
                connector.connect_from(token, source).await
            } else {
                connector.connect_resuming(token, source).await
            };
            let Ok(mut conn) = opened else {
                continue;
            };
            if let Ok(resent) = self.replay(&mut conn).await {
                return Some((conn, resent));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ch(n: u128) -> ChannelId {
        ChannelId(Uuid::from_u128(n))
    }

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let d: Vec<Duration> = b.delays().take(5).collect();
        for (got, base) in d.iter().zip([100, 200, 400, 400, 400]) {
            let base = Duration::from_millis(base);
            assert!(*got >= base && *got <= base * 2, "{got:?} for {base:?}");
        }
    }

    #[test]
    fn an_ack_clears_a_send_once() {
        let mut o = Outbox::new();
        o.sent(ch(1), "a".into(), "hi".into());
        assert!(o.resend_frame("a").is_some());
        assert!(o.acked("a"));
        assert!(!o.acked("a"), "a resend's ack is not a second ack");
        assert!(o.resend_frame("a").is_none());
        assert_eq!(o.unacked(), 0);
    }

    #[test]
    fn resume_names_the_last_message_of_each_channel_or_pings() {
        let mut o = Outbox::new();
        assert_eq!(o.resume_frame(), ClientFrame::Ping);
        let (m1, m2) = (MessageId(Uuid::from_u128(7)), MessageId(Uuid::from_u128(8)));
        o.seen(ch(1), m1);
        o.seen(ch(1), m2);
        o.seen(ch(2), m1);
        assert_eq!(
            o.resume_frame(),
            ClientFrame::Resume {
                channels: [(ch(1), m2), (ch(2), m1)].into_iter().collect()
            }
        );
    }
}
