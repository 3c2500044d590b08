//! Who is notified of a batch of messages, with what badge and text. Per batch, whatever its
//! size: one PostgreSQL statement for the candidates (members with devices), one Redis round
//! trip for who is looking, two statements for the badges and two for the titles.
//!
//! A member is notified of a message when they are not its sender, were a member when it was
//! sent, their level for the channel lets it through (`all`, or `mentions` and it mentions
//! them), and no connection of theirs is in the foreground (the gateways' `attentive` entries:
//! a live socket whose app did not say it went to the background). Membership is read as it is
//! now: someone who left since is not notified.

use chat_store::bus::Consumed;
use chat_store::pg::PgPool;
use chat_store::presence::Presence;
use chat_store::push_outbox::{self, Candidate, ChannelTitle, Delivery};
use chat_types::bus::{BusRecord, MessageRecord};
use chat_types::limits::mentioned_usernames;
use chat_types::{ChannelId, MessageId, UserId};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

/// How long APNs keeps trying to reach a device that is off.
pub const APNS_EXPIRY: chrono::Duration = chrono::Duration::hours(1);

/// Namespace of `apns-id`s: UUIDv5 of (token, message id), the same on every attempt.
const APNS_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c0b_7e3a_52f4_4e0a_9f0e_7d1c_2b3a_4c5d);

#[derive(Clone)]
pub struct Decider {
    db: PgPool,
    presence: Presence,
    max_age: Duration,
}

/// One message to one user, before it is copied per device.
struct Notice<'a> {
    message: &'a MessageRecord,
    user: UserId,
    hide_previews: bool,
}

impl Decider {
    pub fn new(db: PgPool, presence: Presence, max_age: Duration) -> Self {
        Decider {
            db,
            presence,
            max_age,
        }
    }

    pub async fn ping(&self) -> Result<(), String> {
        self.presence
            .ping()
            .await
            .map_err(|e| format!("redis: {e}"))
    }

    /// The deliveries a batch of records asks for (none for memberships and events).
    pub async fn decide(&self, records: &[Consumed]) -> anyhow::Result<Vec<Delivery>> {
        let now = Utc::now();
        let max_age = chrono::Duration::from_std(self.max_age)?;
        // A resend can put a message on the topic twice; it is one notification.
        let mut ids = HashSet::new();
        let messages: Vec<&MessageRecord> = records
            .iter()
            .filter_map(|c| match &c.record {
                BusRecord::Message(m) if !ids.insert(m.id) => None,
                BusRecord::Message(m) if now - m.created_at <= max_age => Some(m),
                BusRecord::Message(_) => {
                    metrics::counter!("chat_notifier_too_old_total").increment(1);
                    None
                }
                _ => None,
            })
            .collect();
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let channels: Vec<ChannelId> = unique(messages.iter().map(|m| m.channel_id));
        let candidates = push_outbox::candidates(&self.db, &channels).await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut by_channel: HashMap<Uuid, Vec<&Candidate>> = HashMap::new();
        for c in &candidates {
            by_channel.entry(c.channel_id).or_default().push(c);
        }

        // Who would be notified of what, before looking at who is looking.
        let mut notices: Vec<Notice<'_>> = Vec::new();
        for m in &messages {
            let Some(members) = by_channel.get(&m.channel_id.0) else {
                continue;
            };
            let mut mentioned: Option<Vec<String>> = None;
            let mut seen: HashSet<Uuid> = HashSet::new();
            for c in members {
                if !wants(c, m, &mut mentioned) || !seen.insert(c.user_id) {
                    continue;
                }
                notices.push(Notice {
                    message: m,
                    user: UserId(c.user_id),
                    hide_previews: c.hide_previews,
                });
            }
        }
        if notices.is_empty() {
            return Ok(Vec::new());
        }

        let users: Vec<UserId> = unique(notices.iter().map(|n| n.user));
        let looking: HashSet<UserId> = users
            .iter()
            .zip(self.presence.attentive(&users).await?)
            .filter(|(_, a)| *a)
            .map(|(u, _)| *u)
            .collect();
        notices.retain(|n| !looking.contains(&n.user));
        metrics::counter!("chat_notifier_skipped_looking_total").increment(looking.len() as u64);
        if notices.is_empty() {
            return Ok(Vec::new());
        }

        // Badges: what the user had unread, plus the batch's messages to them that the message
        // servers have not logged yet (they read the topic beside us).
        let users: Vec<UserId> = unique(notices.iter().map(|n| n.user));
        let keys: Vec<(ChannelId, MessageId)> =
            unique(notices.iter().map(|n| (n.message.channel_id, n.message.id)));
        let (totals, logged) =
            push_outbox::unread_totals_and_logged(&self.db, &users, &keys).await?;
        let senders: Vec<UserId> = unique(notices.iter().map(|n| n.message.sender_id));
        let (titles, names) = push_outbox::titles(&self.db, &channels, &senders).await?;
        let titles: HashMap<Uuid, &ChannelTitle> = titles.iter().map(|t| (t.id, t)).collect();

        let mut unlogged_so_far: HashMap<UserId, i64> = HashMap::new();
        let mut devices_of: HashMap<(Uuid, Uuid), Vec<&Candidate>> = HashMap::new();
        for c in &candidates {
            devices_of
                .entry((c.channel_id, c.user_id))
                .or_default()
                .push(c);
        }
        let mut out = Vec::new();
        for n in &notices {
            let m = n.message;
            let extra = unlogged_so_far.entry(n.user).or_default();
            if !logged.contains(&m.id) {
                *extra += 1;
            }
            let badge = totals.get(&n.user).copied().unwrap_or(0) + *extra;
            let sender = names
                .get(&m.sender_id)
                .map(String::as_str)
                .unwrap_or("Someone");
            let payload = payload(
                m,
                titles.get(&m.channel_id.0).copied(),
                sender,
                badge,
                n.hide_previews,
            );
            for d in devices_of
                .get(&(m.channel_id.0, n.user.0))
                .into_iter()
                .flatten()
            {
                out.push(Delivery {
                    token: d.token.clone(),
                    message_id: m.id.0,
                    user_id: n.user.0,
                    channel_id: m.channel_id.0,
                    apns_id: apns_id(&d.token, m.id),
                    environment: d.environment.clone(),
                    bundle_id: d.bundle_id.clone(),
                    payload: payload.clone(),
                    expires_at: m.created_at + APNS_EXPIRY,
                    attempts: 1,
                });
            }
        }
        metrics::counter!("chat_notifier_decided_total").increment(out.len() as u64);
        Ok(out)
    }
}

/// Whether candidate `c` (a member with a device) wants to hear of `m` at all.
fn wants(c: &Candidate, m: &MessageRecord, mentioned: &mut Option<Vec<String>>) -> bool {
    if c.user_id == m.sender_id.0 || c.joined_at > m.created_at {
        return false;
    }
    match c.notify_level.as_str() {
        "all" => true,
        "mentions" => mentioned
            .get_or_insert_with(|| mentioned_usernames(&m.body))
            .contains(&c.username),
        _ => false,
    }
}

fn unique<T: Copy + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(*i)).collect()
}

/// The same id on every attempt for one device and message: APNs shows repeated requests with
/// the same id and collapse id as one notification.
pub fn apns_id(token: &str, message: MessageId) -> Uuid {
    let mut name = Vec::with_capacity(token.len() + 16);
    name.extend_from_slice(token.as_bytes());
    name.extend_from_slice(message.0.as_bytes());
    Uuid::new_v5(&APNS_ID_NAMESPACE, &name)
}

/// The notification's JSON. Title: the sender in a direct conversation, "sender · channel" in a
/// group; body: the message's preview. With previews hidden, only "New message".
pub fn payload(
    m: &MessageRecord,
    channel: Option<&ChannelTitle>,
    sender: &str,
    badge: i64,
    hide_previews: bool,
) -> String {
    let alert = if hide_previews {
        serde_json::json!({ "title": "New message" })
    } else {
        let title = match channel {
            Some(c) if !c.direct => format!("{sender} · {}", c.name),
            _ => sender.to_owned(),
        };
        serde_json::json!({ "title": title, "body": chat_store::read_state::message_preview(&m.body, &m.attachments) })
    };
    serde_json::json!({
        "aps": {
            "alert": alert,
            "badge": badge,
            "sound": "default",
            "thread-id": m.channel_id.to_string(),
        },
        "channel_id": m.channel_id,
        "message_id": m.id,
    })
    .to_string()
}

/// When a delivery that keeps failing stops being worth sending.
pub fn expired(expires_at: DateTime<Utc>) -> bool {
    expires_at <= Utc::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_types::limits::{BODY_MAX_CHARS, CHANNEL_NAME_MAX, DISPLAY_NAME_MAX};

    fn record(body: &str) -> MessageRecord {
        MessageRecord {
            id: MessageId(Uuid::now_v7()),
            channel_id: ChannelId(Uuid::now_v7()),
            sender_id: UserId(Uuid::now_v7()),
            body: body.into(),
            client_msg_id: "c1".into(),
            created_at: Utc::now(),
            reply_to: None,
            attachments: Vec::new(),
        }
    }

    fn candidate(m: &MessageRecord, level: &str, username: &str) -> Candidate {
        Candidate {
            channel_id: m.channel_id.0,
            user_id: Uuid::now_v7(),
            notify_level: level.into(),
            joined_at: m.created_at - chrono::Duration::seconds(5),
            username: username.into(),
            hide_previews: false,
            token: "ab".repeat(32),
            environment: "sandbox".into(),
            bundle_id: "com.example.chat".into(),
        }
    }

    #[test]
    fn levels_senders_and_late_joiners() {
        let m = record("hi @Bob, see this");
        let mut cache = None;
        assert!(wants(&candidate(&m, "all", "carol"), &m, &mut cache));
        assert!(wants(&candidate(&m, "mentions", "bob"), &m, &mut cache));
        assert!(!wants(&candidate(&m, "mentions", "carol"), &m, &mut cache));
        assert!(!wants(&candidate(&m, "none", "bob"), &m, &mut cache));
        let mut sender = candidate(&m, "all", "alice");
        sender.user_id = m.sender_id.0;
        assert!(!wants(&sender, &m, &mut cache));
        let mut late = candidate(&m, "all", "dave");
        late.joined_at = m.created_at + chrono::Duration::seconds(1);
        assert!(!wants(&late, &m, &mut cache));
    }

    #[test]
    fn the_payload_titles_groups_and_hides_previews() {
        let m = record("the new mockups are up");
        let group = ChannelTitle {
            id: m.channel_id.0,
            direct: false,
            name: "design".into(),
        };
        let p: serde_json::Value =
            serde_json::from_str(&payload(&m, Some(&group), "Alice", 7, false)).unwrap();
        assert_eq!(p["aps"]["alert"]["title"], "Alice · design");
        assert_eq!(p["aps"]["alert"]["body"], "the new mockups are up");
        assert_eq!(p["aps"]["badge"], 7);
        assert_eq!(p["aps"]["thread-id"], m.channel_id.to_string());
        assert_eq!(p["message_id"], m.id.to_string());
        let dm = ChannelTitle {
            direct: true,
            ..group
        };
        let p: serde_json::Value =
            serde_json::from_str(&payload(&m, Some(&dm), "Alice", 1, false)).unwrap();
        assert_eq!(p["aps"]["alert"]["title"], "Alice");
        let hidden: serde_json::Value =
            serde_json::from_str(&payload(&m, Some(&dm), "Alice", 1, true)).unwrap();
        assert_eq!(
            hidden["aps"]["alert"],
            serde_json::json!({"title": "New message"})
        );
        assert!(!hidden.to_string().contains("mockups"));
    }

    #[test]
    fn the_longest_payload_fits_apns_4096_bytes() {
        // Four-byte characters everywhere: the longest names and the longest body.
        let m = record(&"𝄞".repeat(BODY_MAX_CHARS));
        let c = ChannelTitle {
            id: m.channel_id.0,
            direct: false,
            name: "𝄞".repeat(CHANNEL_NAME_MAX),
        };
        let p = payload(
            &m,
            Some(&c),
            &"𝄞".repeat(DISPLAY_NAME_MAX),
            i64::from(u32::MAX),
            false,
        );
        assert!(p.len() <= 4096, "{} bytes", p.len());
    }

    #[test]
    fn the_apns_id_is_stable_per_device_and_message() {
        let m = MessageId(Uuid::now_v7());
        assert_eq!(apns_id("aa", m), apns_id("aa", m));
        assert_ne!(apns_id("aa", m), apns_id("ab", m));
        assert_ne!(apns_id("aa", m), apns_id("aa", MessageId(Uuid::now_v7())));
    }
}
