//! The one gate a send passes before it is produced: the sender is within their send rate, the
//! frame's fields are valid, the sender is a member of the channel, and the send claim is taken
//! (which tells a resend from a first send, through any gateway). One call, [`Admission::admit`]; the answer is the record to produce or
//! the refusal to tell the client.
//!
//! Membership is usually one Redis call: a membership PostgreSQL confirmed earlier is trusted
//! while the user's membership epoch is unchanged (the API moves it after every leave, before
//! answering), and the epoch is checked in the same atomic call that takes the claim. Otherwise
//! PostgreSQL decides, and the answer is cached under the epoch read before asking it.

use chat_store::claims::{FirstSend, MemberClaim, SendClaims};
use chat_store::cql::MessageStore;
use chat_store::epochs::MemberEpochs;
use chat_store::pg::{Access, PgPool};
use chat_types::attachments::MessageAttachment;
use chat_types::bus::{MessageRecord, Target};
use chat_types::ws::error_code;
use chat_types::{ChannelId, MessageId, UserId, limits};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Why a send was refused: an `error` frame's code and message, and for `rate_limited` when
/// to resend.
#[derive(Debug, PartialEq)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Refused {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refused {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn rate_limited(wait: Duration) -> Self {
        Refused {
            retry_after: Some(wait),
            ..Refused::new(
                error_code::RATE_LIMITED,
                "too many messages; resend this one (same client_msg_id) after retry_after_ms",
            )
        }
    }

    pub fn unavailable() -> Self {
        Refused::new(
            error_code::UNAVAILABLE,
            "the message could not be accepted right now; resend it with the same client_msg_id",
        )
    }
}

/// The memberships PostgreSQL confirmed for one connected user.
#[derive(Default)]
struct Confirmed {
    /// The user's membership epoch (Redis) the entries were confirmed under.
    epoch: String,
    /// Channel -> when PostgreSQL confirmed the membership. The age limit is a second line of
    /// defence (Redis losing the epoch), not the mechanism.
    channels: HashMap<ChannelId, Instant>,
}

/// A user's send rate: a token bucket per user (per gateway: a user connected to two gateways
/// has two buckets, which the burst size allows for).
#[derive(Clone, Copy, Debug)]
pub struct SendRate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

pub struct Admission {
    db: PgPool,
    /// Where a resend that differs from its first send finds the original.
    store: MessageStore,
    sends: DefaultKeyedRateLimiter<UserId>,
    claims: SendClaims,
    epochs: MemberEpochs,
    /// Longest a confirmed membership is reused.
    max_age: Duration,
    confirmed: RwLock<HashMap<UserId, Confirmed>>,
}

impl Admission {
    pub fn new(
        db: PgPool,
        store: MessageStore,
        claims: SendClaims,
        epochs: MemberEpochs,
        max_age: Duration,
        rate: SendRate,
    ) -> Self {
        Admission {
            db,
            store,
            sends: RateLimiter::keyed(Quota::per_second(rate.per_second).allow_burst(rate.burst)),
            claims,
            epochs,
            max_age,
            confirmed: RwLock::default(),
        }
    }

    /// Admit a send: the record to produce (the first send's, when this is a resend: its body,
    /// channel, files and time are the message), or why not.
    pub async fn admit(
        &self,
        user: UserId,
        channel: ChannelId,
        client_msg_id: String,
        body: String,
        reply_to: Option<MessageId>,
        attachments: Vec<Uuid>,
    ) -> Result<MessageRecord, Refused> {
        self.check_rate(user)?;
        validate(&client_msg_id, &body, &attachments)?;
        let reply_to = match reply_to {
            Some(id) => Some(self.reply_target(channel, id).await?),
            None => None,
        };
        let id = MessageId::derive(user, &client_msg_id);
        let files = self.claim_files(user, channel, id, &attachments).await?;
        // Millisecond precision: what CQL `timestamp` stores, so the ack equals the stored one.
        let now = chrono::Utc::now();
        let created_at =
            chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let record = MessageRecord {
            id,
            channel_id: channel,
            sender_id: user,
            body,
            client_msg_id,
            created_at,
            reply_to,
            attachments: files,
        };
        let mut epoch = None;
        if let Some(cached) = self.cached_epoch(user, channel) {
            match self.claims.claim_as_member(&record, &cached).await {
                Ok(MemberClaim::Claimed(first)) => {
                    return self.first_or(record, first, &attachments).await;
                }
                Ok(MemberClaim::Stale(current)) => {
                    self.forget(user, None);
                    epoch = Some(current);
                }
                Err(e) => tracing::warn!(error = %e, "send claim failed; asking PostgreSQL"),
            }
        }
        let epoch = match epoch {
            Some(e) => Some(e),
            None => self.epochs.current(user).await.ok(),
        };
        self.check_member(user, channel).await?;
        if let Some(epoch) = epoch {
            self.remember(user, channel, epoch);
        }
        match self.claims.claim(&record).await {
            Ok(first) => self.first_or(record, first, &attachments).await,
            // Without the claim the message id still deduplicates in the store; only a resend's
            // ack could then carry a newer time.
            Err(e) => {
                tracing::warn!(error = %e, "send claim failed; continuing without it");
                Ok(record)
            }
        }
    }

    /// Within the user's send rate (sends, edits, deletes and reactions share it)?
    pub fn check_rate(&self, user: UserId) -> Result<(), Refused> {
        if let Err(not_until) = self.sends.check_key(&user) {
            metrics::counter!("chat_sends_rate_limited_total").increment(1);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Refused::rate_limited(wait.max(Duration::from_millis(1))));
        }
        Ok(())
    }

    /// The files a send names, claimed for its message (PostgreSQL, one statement, all or
    /// none). Refused when any is not the sender's completed, unsent upload to this channel;
    /// when the sender is not a member, that is the answer instead.
    async fn claim_files(
        &self,
        user: UserId,
        channel: ChannelId,
        message: MessageId,
        ids: &[Uuid],
    ) -> Result<Vec<MessageAttachment>, Refused> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match chat_store::attachments::claim(&self.db, channel, user, message, ids).await {
            Ok(Some(files)) => Ok(files),
            Ok(None) => {
                self.check_member(user, channel).await?;
                Err(Refused::new(
                    error_code::INVALID_ATTACHMENT,
                    "each attachment must be your completed upload to this channel, not sent in another message",
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming attachments failed");
                Err(Refused::unavailable())
            }
        }
    }

    /// The message a reply answers: a stored, not deleted message of the same channel.
    async fn reply_target(&self, channel: ChannelId, id: MessageId) -> Result<Target, Refused> {
        match self.store.message(channel, id).await {
            Ok(Some(m)) if m.deleted => Err(Refused::new(
                error_code::MESSAGE_DELETED,
                "the message replied to was deleted",
            )),
            Ok(Some(m)) => Ok(Target {
                id,
                seq: m.seq.unwrap_or(0),
            }),
            Ok(None) => Err(Refused::new(
                error_code::UNKNOWN_MESSAGE,
                "reply_to is not a stored message of this channel",
            )),
            Err(e) => {
                tracing::warn!(error = %e, "reading a replied-to message failed");
                Err(Refused::unavailable())
            }
        }
    }

    /// The record to produce: `record` for a first send; for a resend, the first send's message.
    /// A resend of the same body to the same channel is that message with the first one's time;
    /// one that differs (a `client_msg_id` reused for something else) is answered with the
    /// stored original, which an acked first send soon is: waited for briefly, else the client
    /// is told to resend later.
    async fn first_or(
        &self,
        record: MessageRecord,
        first: Option<FirstSend>,
        claimed: &[Uuid],
    ) -> Result<MessageRecord, Refused> {
        let Some(first) = first else {
            return Ok(record);
        };
        if let Some(same) = first.same_message(&record) {
            return Ok(same);
        }
        metrics::counter!("chat_sends_reused_client_msg_id_total").increment(1);
        let mut delays = chat_common::retry::backoff(
            Duration::from_millis(50),
            Duration::from_millis(400),
            Some(6),
        );
        loop {
            match self.stored(record.id, first.channel_id).await {
                Ok(Some(original)) => {
                    // Files this resend claimed that the original does not carry are free
                    // for another message again.
                    if !claimed.is_empty() {
                        let keep: Vec<Uuid> = original.attachments.iter().map(|a| a.id).collect();
                        if let Err(e) =
                            chat_store::attachments::release(&self.db, record.id, claimed, &keep)
                                .await
                        {
                            tracing::warn!(error = %e, "releasing a resend's attachments failed");
                        }
                    }
                    return Ok(MessageRecord {
                        id: original.id,
                        channel_id: original.channel_id,
                        sender_id: original.sender_id,
                        body: original.body,
                        client_msg_id: original.client_msg_id,
                        created_at: original.created_at,
                        reply_to: original.reply_to.map(|r| Target {
                            id: r.id,
                            seq: r.seq,
                        }),
                        attachments: original.attachments,
                    });
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reading a resent message's original failed"),
            }
            match delays.next() {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(Refused::unavailable()),
            }
        }
    }

    /// The stored message `id` of `channel`, if it is stored yet.
    async fn stored(
        &self,
        id: MessageId,
        channel: ChannelId,
    ) -> Result<Option<chat_types::Message>, chat_store::cql::CqlError> {
        self.store.message(channel, id).await
    }

    /// Whether a membership PostgreSQL confirmed is still trusted (no store asked).
    pub fn is_confirmed(&self, user: UserId, channel: ChannelId) -> bool {
        let confirmed = self.confirmed.read().expect("admission lock");
        confirmed.get(&user).is_some_and(|c| {
            c.channels
                .get(&channel)
                .is_some_and(|at| at.elapsed() < self.max_age)
        })
    }

    /// Whether `user` may act in `channel` (read marks, and later other per-channel frames):
    /// the membership confirmed for sends when fresh, else PostgreSQL's answer (remembered).
    pub async fn ensure_member(&self, user: UserId, channel: ChannelId) -> Result<(), Refused> {
        if self.cached_epoch(user, channel).is_some() {
            return Ok(());
        }
        let epoch = self.epochs.current(user).await.ok();
        self.check_member(user, channel).await?;
        if let Some(epoch) = epoch {
            self.remember(user, channel, epoch);
        }
        Ok(())
    }

    /// A `Left` push (one channel), or a stale epoch (`None`: all): forget cached memberships.
    pub fn forget(&self, user: UserId, channel: Option<ChannelId>) {
        let mut confirmed = self.confirmed.write().expect("admission lock");
        if let Some(c) = confirmed.get_mut(&user) {
            match channel {
                Some(channel) => {
                    c.channels.remove(&channel);
                }
                None => c.channels.clear(),
            }
        }
    }

    /// Redis lost its data (epochs included): trust no cached membership.
    pub fn forget_all(&self) {
        self.confirmed.write().expect("admission lock").clear();
    }

    /// Keep cached memberships only of users still connected here (the heartbeat calls this;
    /// it bounds the cache by the connected users).
    pub fn retain_users(&self, connected: impl Fn(&UserId) -> bool) {
        self.confirmed
            .write()
            .expect("admission lock")
            .retain(|u, _| connected(u));
        // Buckets that are full again carry no information: drop them.
        self.sends.retain_recent();
        self.sends.shrink_to_fit();
    }

    fn cached_epoch(&self, user: UserId, channel: ChannelId) -> Option<String> {
        let confirmed = self.confirmed.read().expect("admission lock");
        let c = confirmed.get(&user)?;
        let fresh = c
            .channels
            .get(&channel)
            .is_some_and(|at| at.elapsed() < self.max_age);
        fresh.then(|| c.epoch.clone())
    }

    /// Remember that PostgreSQL confirmed the membership, having read `epoch` before asking. A
    /// different epoch forgets every other channel: they were confirmed under an older one.
    fn remember(&self, user: UserId, channel: ChannelId, epoch: String) {
        let mut confirmed = self.confirmed.write().expect("admission lock");
        let c = confirmed.entry(user).or_default();
        if c.epoch != epoch {
            c.channels.clear();
            c.epoch = epoch;
        }
        c.channels.insert(channel, Instant::now());
    }

    /// The authoritative membership check (PostgreSQL).
    async fn check_member(&self, user: UserId, channel: ChannelId) -> Result<(), Refused> {
        match chat_store::pg::access(&self.db, channel, user).await {
            Ok(Access::Member(_)) => Ok(()),
            Ok(Access::NotMember(_)) => Err(Refused::new(
                error_code::NOT_A_MEMBER,
                "you are not a member of this channel",
            )),
            Ok(Access::NoSuchChannel) => Err(Refused::new(
                error_code::UNKNOWN_CHANNEL,
                "there is no channel with this id",
            )),
            Err(e) => {
                tracing::error!(error = %e, "membership check failed");
                Err(Refused::unavailable())
            }
        }
    }
}

/// The frame's own fields, before anything is asked of a store.
fn validate(client_msg_id: &str, body: &str, attachments: &[Uuid]) -> Result<(), Refused> {
    if !limits::valid_client_msg_id(client_msg_id) {
        return Err(Refused::new(
            error_code::INVALID_CLIENT_MSG_ID,
            format!(
                "client_msg_id must be 1 to {} characters",
                limits::CLIENT_MSG_ID_MAX
            ),
        ));
    }
    if attachments.len() > limits::ATTACHMENTS_PER_MESSAGE_MAX
        || attachments
            .iter()
            .enumerate()
            .any(|(i, a)| attachments[..i].contains(a))
    {
        return Err(Refused::new(
            error_code::INVALID_ATTACHMENT,
            format!(
                "a message carries at most {} attachments, each once",
                limits::ATTACHMENTS_PER_MESSAGE_MAX
            ),
        ));
    }
    let body_ok = if attachments.is_empty() {
        limits::valid_body(body)
    } else {
        limits::valid_caption(body)
    };
    if !body_ok {
        return Err(Refused::new(
            error_code::INVALID_BODY,
            format!(
                "body must be 1 to {} characters and not only white space",
                limits::BODY_MAX_CHARS
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_with_a_bad_client_msg_id_or_body_is_refused_before_any_store_is_asked() {
        let long_id = "x".repeat(limits::CLIENT_MSG_ID_MAX + 1);
        assert_eq!(
            validate(&long_id, "hi", &[]).unwrap_err().code,
            error_code::INVALID_CLIENT_MSG_ID
        );
        assert_eq!(
            validate("", "hi", &[]).unwrap_err().code,
            error_code::INVALID_CLIENT_MSG_ID
        );
        assert_eq!(
            validate("c1", "  \n", &[]).unwrap_err().code,
            error_code::INVALID_BODY
        );
        let long_body = "é".repeat(limits::BODY_MAX_CHARS + 1);
        assert_eq!(
            validate("c1", &long_body, &[]).unwrap_err().code,
            error_code::INVALID_BODY
        );
        assert!(validate("c1", &"é".repeat(limits::BODY_MAX_CHARS), &[]).is_ok());
    }

    #[test]
    fn a_send_with_attachments_may_have_no_text_but_at_most_four_distinct_files() {
        let ids: Vec<Uuid> = (1..=5).map(Uuid::from_u128).collect();
        assert!(validate("c1", "", &ids[..1]).is_ok());
        assert!(validate("c1", "a caption", &ids[..4]).is_ok());
        assert_eq!(
            validate("c1", "", &[]).unwrap_err().code,
            error_code::INVALID_BODY
        );
        assert_eq!(
            validate("c1", "  ", &ids[..1]).unwrap_err().code,
            error_code::INVALID_BODY,
            "white space alone is still not a caption"
        );
        assert_eq!(
            validate("c1", "", &ids).unwrap_err().code,
            error_code::INVALID_ATTACHMENT
        );
        assert_eq!(
            validate("c1", "", &[ids[0], ids[1], ids[0]])
                .unwrap_err()
                .code,
            error_code::INVALID_ATTACHMENT
        );
    }
}
