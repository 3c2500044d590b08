//! Applying edits, deletes and reactions in partition order. Pure: the batch's stored state of
//! the messages its events touch goes in ([`Targets`]), and each event comes out applied (its
//! change, with the reaction count after it) or moot (the message was deleted before it, the
//! reaction was already there or already gone), together with the state to write.

use chat_store::cql::StateWrite;
use chat_types::bus::{Action, EventRecord};
use chat_types::events::{Change, ChannelEvent};
use chat_types::{ChannelId, EventId, Message, UserId};
use std::collections::{HashMap, HashSet};

/// What the batch knows of the messages its events touch: stored state, then every change
/// applied so far in the batch.
#[derive(Default)]
pub struct Targets {
    /// (channel, message seq) -> deleted?
    deleted: HashMap<(ChannelId, i64), bool>,
    /// (channel, message seq, emoji) -> who reacted.
    reactions: HashMap<(ChannelId, i64, String), HashSet<UserId>>,
    /// The writes, one per cell (the last change wins): concurrent writes to one cell have no
    /// order, so the batch writes each cell's final state once.
    writes: HashMap<Cell, StateWrite>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Cell {
    Message(ChannelId, i64),
    Reaction(ChannelId, i64, String, UserId),
}

impl Targets {
    /// A stored message an event of the batch names.
    pub fn add_message(&mut self, m: &Message) {
        if let Some(seq) = m.seq {
            self.deleted.insert((m.channel_id, seq), m.deleted);
        }
    }

    /// Who had reacted with `emoji` to the message at `seq`, as stored.
    pub fn add_reactions(&mut self, channel: ChannelId, seq: i64, emoji: &str, users: Vec<UserId>) {
        self.reactions.insert(
            (channel, seq, emoji.to_owned()),
            users.into_iter().collect(),
        );
    }

    /// Apply a new event. `None`: moot, it takes no position. A message the batch knows
    /// nothing of (not stored: the gateway checked it was) is taken as not deleted.
    /// `mentions_of` resolves the mentions of an edit's new body.
    pub fn apply(
        &mut self,
        r: &EventRecord,
        mentions_of: impl FnOnce(&str) -> Vec<UserId>,
    ) -> Option<Change> {
        let (c, seq) = (r.channel_id, r.target.seq);
        let deleted = self.deleted.get(&(c, seq)).copied().unwrap_or(false);
        if deleted {
            return None;
        }
        let change = match &r.action {
            Action::Edit { body } => Change::Edited {
                body: body.clone(),
                mentions: mentions_of(body),
            },
            Action::Delete => Change::Deleted,
            Action::React { emoji } => {
                let set = self.reactions.entry((c, seq, emoji.clone())).or_default();
                if !set.insert(r.actor_id) {
                    return None;
                }
                Change::ReactionAdded {
                    emoji: emoji.clone(),
                    count: set.len() as u32,
                }
            }
            Action::Unreact { emoji } => {
                let set = self.reactions.entry((c, seq, emoji.clone())).or_default();
                if !set.remove(&r.actor_id) {
                    return None;
                }
                Change::ReactionRemoved {
                    emoji: emoji.clone(),
                    count: set.len() as u32,
                }
            }
        };
        self.record(c, seq, r.actor_id, &change, r.created_at);
        Some(change)
    }

    /// A stored event replayed after a crash: its state may not have been written. Written
    /// again, except an edit of a message deleted since (the delete's replay follows anyway).
    pub fn reapply(&mut self, e: &ChannelEvent) {
        let (c, seq) = (e.channel_id, e.message_seq);
        if matches!(e.change, Change::Edited { .. })
            && self.deleted.get(&(c, seq)).copied().unwrap_or(false)
        {
            return;
        }
        match &e.change {
            Change::ReactionAdded { emoji, .. } => {
                self.reactions
                    .entry((c, seq, emoji.clone()))
                    .or_default()
                    .insert(e.actor_id);
            }
            Change::ReactionRemoved { emoji, .. } => {
                if let Some(set) = self.reactions.get_mut(&(c, seq, emoji.clone())) {
                    set.remove(&e.actor_id);
                }
            }
            _ => {}
        }
        self.record(c, seq, e.actor_id, &e.change, e.created_at);
    }

    fn record(
        &mut self,
        c: ChannelId,
        seq: i64,
        actor: UserId,
        change: &Change,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let (cell, write) = match change {
            Change::Edited { body, mentions } => (
                Cell::Message(c, seq),
                StateWrite::Edit {
                    channel: c,
                    seq,
                    body: body.clone(),
                    mentions: mentions.clone(),
                    edited_at: at,
                },
            ),
            Change::Deleted => {
                self.deleted.insert((c, seq), true);
                (
                    Cell::Message(c, seq),
                    StateWrite::Delete { channel: c, seq },
                )
            }
            Change::ReactionAdded { emoji, .. } => (
                Cell::Reaction(c, seq, emoji.clone(), actor),
                StateWrite::ReactionOn {
                    channel: c,
                    seq,
                    emoji: emoji.clone(),
                    user: actor,
                    at,
                },
            ),
            Change::ReactionRemoved { emoji, .. } => (
                Cell::Reaction(c, seq, emoji.clone(), actor),
                StateWrite::ReactionOff {
                    channel: c,
                    seq,
                    emoji: emoji.clone(),
                    user: actor,
                },
            ),
        };
        self.writes.insert(cell, write);
    }

    /// Whether the batch deleted the message at `seq` (or found it deleted).
    pub fn is_deleted(&self, channel: ChannelId, seq: i64) -> bool {
        self.deleted.get(&(channel, seq)).copied().unwrap_or(false)
    }

    /// The state to write for the batch, one write per cell.
    pub fn into_writes(self) -> Vec<StateWrite> {
        self.writes.into_values().collect()
    }
}

/// The event a record becomes at position `seq`.
pub fn event_at(r: &EventRecord, seq: i64, change: Change) -> ChannelEvent {
    ChannelEvent {
        id: r.id,
        channel_id: r.channel_id,
        seq,
        actor_id: r.actor_id,
        message_id: r.target.id,
        message_seq: r.target.seq,
        client_event_id: r.client_event_id.clone(),
        created_at: r.created_at,
        change,
    }
}

/// The id under which an event's placement is stored (`message_ids`, its own namespace).
pub fn placement_key(id: EventId) -> chat_types::MessageId {
    chat_types::MessageId(id.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_types::MessageId;
    use chat_types::bus::Target;
    use uuid::Uuid;

    fn rec(actor: u128, action: Action) -> EventRecord {
        EventRecord {
            id: EventId(Uuid::from_u128(actor * 1000 + 1)),
            channel_id: ChannelId(Uuid::from_u128(1)),
            actor_id: UserId(Uuid::from_u128(actor)),
            target: Target {
                id: MessageId(Uuid::from_u128(5)),
                seq: 5,
            },
            client_event_id: "e".into(),
            created_at: chrono::DateTime::from_timestamp_millis(0).unwrap(),
            action,
        }
    }

    fn react(actor: u128) -> EventRecord {
        rec(
            actor,
            Action::React {
                emoji: "👍".into()
            },
        )
    }

    fn no_mentions(_: &str) -> Vec<UserId> {
        Vec::new()
    }

    #[test]
    fn an_edit_carries_and_writes_the_mentions_of_its_new_body() {
        let mut t = Targets::default();
        let bob = UserId(Uuid::from_u128(7));
        let edit = t.apply(
            &rec(
                1,
                Action::Edit {
                    body: "hi @bob".into(),
                },
            ),
            |b| {
                assert_eq!(b, "hi @bob");
                vec![bob]
            },
        );
        assert_eq!(
            edit,
            Some(Change::Edited {
                body: "hi @bob".into(),
                mentions: vec![bob]
            })
        );
        assert!(
            matches!(&t.into_writes()[..], [StateWrite::Edit { mentions, .. }] if mentions == &[bob])
        );
    }

    #[test]
    fn reactions_count_each_user_once_and_repeats_are_moot() {
        let mut t = Targets::default();
        assert_eq!(
            t.apply(&react(1), no_mentions),
            Some(Change::ReactionAdded {
                emoji: "👍".into(),
                count: 1
            })
        );
        assert_eq!(t.apply(&react(1), no_mentions), None);
        assert!(matches!(
            t.apply(&react(2), no_mentions),
            Some(Change::ReactionAdded { count: 2, .. })
        ));
        let unreact = rec(
            1,
            Action::Unreact {
                emoji: "👍".into()
            },
        );
        assert!(matches!(
            t.apply(&unreact, no_mentions),
            Some(Change::ReactionRemoved { count: 1, .. })
        ));
        assert_eq!(t.apply(&unreact, no_mentions), None);
        // One write per (message, emoji, user): user 1's final state is "off".
        let writes = t.into_writes();
        assert_eq!(writes.len(), 2);
        assert!(writes.iter().any(
            |w| matches!(w, StateWrite::ReactionOff { user, .. } if user.0 == Uuid::from_u128(1))
        ));
    }

    #[test]
    fn after_a_delete_edits_and_reactions_are_moot_and_the_tombstone_is_the_final_write() {
        let mut t = Targets::default();
        assert!(
            t.apply(&rec(1, Action::Edit { body: "b".into() }), no_mentions)
                .is_some()
        );
        assert_eq!(
            t.apply(&rec(1, Action::Delete), no_mentions),
            Some(Change::Deleted)
        );
        assert_eq!(
            t.apply(&rec(1, Action::Edit { body: "c".into() }), no_mentions),
            None
        );
        assert_eq!(t.apply(&react(2), no_mentions), None);
        assert_eq!(t.apply(&rec(1, Action::Delete), no_mentions), None);
        let writes = t.into_writes();
        assert_eq!(writes.len(), 1);
        assert!(matches!(writes[0], StateWrite::Delete { seq: 5, .. }));
    }

    #[test]
    fn a_replayed_edit_does_not_bring_back_a_message_deleted_since() {
        let mut t = Targets::default();
        let mut stored = Message::new(
            MessageId(Uuid::from_u128(5)),
            ChannelId(Uuid::from_u128(1)),
            UserId(Uuid::from_u128(1)),
            String::new(),
            "c".into(),
            chrono::DateTime::from_timestamp_millis(0).unwrap(),
            Some(5),
        );
        stored.deleted = true;
        t.add_message(&stored);
        let edit = event_at(
            &rec(1, Action::Edit { body: "x".into() }),
            9,
            Change::Edited {
                body: "x".into(),
                mentions: Vec::new(),
            },
        );
        t.reapply(&edit);
        assert!(t.into_writes().is_empty());
    }
}
