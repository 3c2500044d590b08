//! Channel events in Cassandra: the `channel_events` rows (what resume and gap filling send
//! again), the state they leave on messages (edited body, tombstone) and the `reactions` sets.

use super::{CqlError, MessageStore, bucket_of, mentions_read, mentions_value, prep_owned, resp};
use chat_types::events::{Change, ChannelEvent, ChannelItem};
use chat_types::{ChannelId, EventId, MessageId, UserId};
use chrono::{DateTime, Utc};
use futures::future::try_join_all;
use scylla::client::session::Session;
use scylla::response::query_result::QueryResult;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::MaybeUnset;
use std::sync::Arc;
use uuid::Uuid;

const EVENT_COLUMNS: &str = "channel_id, seq, id, actor_id, message_id, message_seq, client_event_id, created_at, kind, body, emoji, reaction_count, mentions";

type EventRow = (
    Uuid,
    i64,
    Uuid,
    Uuid,
    Uuid,
    i64,
    String,
    DateTime<Utc>,
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<Vec<Uuid>>,
);

/// What an applied event changes on a message, written beside the event (the message server
/// decides these in partition order: a message's final state per batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateWrite {
    Edit {
        channel: ChannelId,
        seq: i64,
        body: String,
        /// The new body's mentions (the old ones go).
        mentions: Vec<UserId>,
        edited_at: DateTime<Utc>,
    },
    Delete {
        channel: ChannelId,
        seq: i64,
    },
    ReactionOn {
        channel: ChannelId,
        seq: i64,
        emoji: String,
        user: UserId,
        at: DateTime<Utc>,
    },
    ReactionOff {
        channel: ChannelId,
        seq: i64,
        emoji: String,
        user: UserId,
    },
}

#[derive(Clone)]
pub(super) struct Statements {
    insert_event: PreparedStatement,
    pub(super) select_bucket_max: PreparedStatement,
    select_range: PreparedStatement,
    update_edit: PreparedStatement,
    update_delete: PreparedStatement,
    insert_reaction: PreparedStatement,
    delete_reaction: PreparedStatement,
    select_reaction_users: PreparedStatement,
    select_reactions_range: PreparedStatement,
}

impl Statements {
    pub(super) async fn prepare(session: &Arc<Session>) -> Result<Self, CqlError> {
        let p = |q: String| prep_owned(session, q);
        Ok(Statements {
            insert_event: p(format!(
                "INSERT INTO channel_events (bucket, {EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .await?,
            select_bucket_max: p(
                "SELECT seq FROM channel_events WHERE channel_id = ? AND bucket = ? LIMIT 1".into(),
            )
            .await?,
            select_range: p(format!(
                "SELECT {EVENT_COLUMNS} FROM channel_events
                 WHERE channel_id = ? AND bucket = ? AND seq >= ? AND seq <= ?"
            ))
            .await?,
            update_edit: p("UPDATE messages SET body = ?, mentions = ?, edited_at = ?
                 WHERE channel_id = ? AND bucket = ? AND seq = ?"
                .into())
            .await?,
            update_delete: p("UPDATE messages SET body = '', deleted = true
                 WHERE channel_id = ? AND bucket = ? AND seq = ?"
                .into())
            .await?,
            insert_reaction: p("INSERT INTO reactions (channel_id, bucket, seq, emoji, user_id, reacted_at)
                 VALUES (?, ?, ?, ?, ?, ?)"
                .into())
            .await?,
            delete_reaction: p("DELETE FROM reactions
                 WHERE channel_id = ? AND bucket = ? AND seq = ? AND emoji = ? AND user_id = ?"
                .into())
            .await?,
            select_reaction_users: p("SELECT user_id FROM reactions
                 WHERE channel_id = ? AND bucket = ? AND seq = ? AND emoji = ?"
                .into())
            .await?,
            select_reactions_range: p("SELECT seq, emoji, user_id, reacted_at FROM reactions
                 WHERE channel_id = ? AND bucket = ? AND seq >= ? AND seq <= ?"
                .into())
            .await?,
        })
    }
}

/// One reaction of one user, as a history page reads them.
pub struct ReactionRow {
    pub seq: i64,
    pub emoji: String,
    pub user: UserId,
    pub at: Option<DateTime<Utc>>,
}

impl MessageStore {
    /// Step 2 of [`MessageStore::store`] for events: their rows (their id rows are step 1),
    /// one request each, concurrently.
    pub(super) async fn insert_event_rows(
        &self,
        events: &[(ChannelEvent, i64)],
    ) -> Result<(), CqlError> {
        let rows = events.iter().map(|(e, _)| async move {
            let (kind, body, emoji, count) = columns_of(&e.change);
            let mentions = match &e.change {
                Change::Edited { mentions, .. } => mentions_value(mentions),
                _ => MaybeUnset::Unset,
            };
            let values = (
                bucket_of(e.seq),
                e.channel_id.0,
                e.seq,
                e.id.0,
                e.actor_id.0,
                e.message_id.0,
                e.message_seq,
                e.client_event_id.as_str(),
                e.created_at,
                kind,
                // Unset, not null: no tombstone cells (see `MessageStore::insert_messages`).
                MaybeUnset::from_option(body),
                MaybeUnset::from_option(emoji),
                MaybeUnset::from_option(count),
                mentions,
            );
            self.session
                .execute_unpaged(&self.events.insert_event, values)
                .await
                .map(|_| ())
        });
        try_join_all(rows).await?;
        Ok(())
    }

    /// Step 3 of [`MessageStore::store`]: the state the batch's events leave. `writes` must
    /// hold at most one write per message and per (message, emoji, user): concurrent writes to
    /// one cell have no order.
    pub(super) async fn write_states(&self, writes: &[StateWrite]) -> Result<(), CqlError> {
        let states = writes.iter().map(|w| async move {
            let s = &self.events;
            match w {
                StateWrite::Edit {
                    channel,
                    seq,
                    body,
                    mentions,
                    edited_at,
                } => {
                    // Written whole (an edit that drops every mention clears the list).
                    let mentions: Vec<Uuid> = mentions.iter().map(|u| u.0).collect();
                    let v = (
                        body.as_str(),
                        mentions,
                        *edited_at,
                        channel.0,
                        bucket_of(*seq),
                        *seq,
                    );
                    self.session.execute_unpaged(&s.update_edit, v).await
                }
                StateWrite::Delete { channel, seq } => {
                    let v = (channel.0, bucket_of(*seq), *seq);
                    self.session.execute_unpaged(&s.update_delete, v).await
                }
                StateWrite::ReactionOn {
                    channel,
                    seq,
                    emoji,
                    user,
                    at,
                } => {
                    let v = (
                        channel.0,
                        bucket_of(*seq),
                        *seq,
                        emoji.as_str(),
                        user.0,
                        *at,
                    );
                    self.session.execute_unpaged(&s.insert_reaction, v).await
                }
                StateWrite::ReactionOff {
                    channel,
                    seq,
                    emoji,
                    user,
                } => {
                    let v = (channel.0, bucket_of(*seq), *seq, emoji.as_str(), user.0);
                    self.session.execute_unpaged(&s.delete_reaction, v).await
                }
            }
            .map(|_| ())
        });
        try_join_all(states).await?;
        Ok(())
    }

    /// The events among positions `from..=to`, oldest first.
    pub async fn events_in(
        &self,
        channel: ChannelId,
        from: i64,
        to: i64,
    ) -> Result<Vec<ChannelEvent>, CqlError> {
        let mut all = self
            .range_rows(&self.events.select_range, channel, from, to, event_rows)
            .await?;
        all.sort_unstable_by_key(|e| e.seq);
        Ok(all)
    }

    /// Everything at positions `after + 1 ..= after + limit`, oldest first: messages (with
    /// their reply previews) and events. What a gateway sends again to fill a gap or resume.
    pub async fn items_after(
        &self,
        channel: ChannelId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChannelItem>, CqlError> {
        let (from, to) = (after + 1, after + limit);
        let (messages, events) = tokio::join!(
            async {
                let mut m = self.messages_in(channel, from, to).await?;
                self.with_reply_previews(channel, &mut m).await?;
                Ok::<_, CqlError>(m)
            },
            self.events_in(channel, from, to),
        );
        let mut items: Vec<ChannelItem> = messages?
            .into_iter()
            .map(ChannelItem::Message)
            .chain(events?.into_iter().map(ChannelItem::Event))
            .collect();
        items.sort_unstable_by_key(ChannelItem::seq);
        Ok(items)
    }

    /// Who has reacted with `emoji` to the message at `seq`.
    pub async fn reaction_users(
        &self,
        channel: ChannelId,
        seq: i64,
        emoji: &str,
    ) -> Result<Vec<UserId>, CqlError> {
        let r = self
            .session
            .execute_unpaged(
                &self.events.select_reaction_users,
                (channel.0, bucket_of(seq), seq, emoji),
            )
            .await?;
        let rows = r.into_rows_result().map_err(resp)?;
        rows.rows::<(Uuid,)>()
            .map_err(resp)?
            .map(|row| row.map(|(u,)| UserId(u)).map_err(resp))
            .collect()
    }

    /// Every reaction to the messages at positions `from..=to`.
    pub(super) async fn reactions_in(
        &self,
        channel: ChannelId,
        from: i64,
        to: i64,
    ) -> Result<Vec<ReactionRow>, CqlError> {
        let s = &self.events.select_reactions_range;
        self.range_rows(s, channel, from, to, reaction_rows).await
    }
}

fn event_rows(r: QueryResult) -> Result<Vec<ChannelEvent>, CqlError> {
    let rows = r.into_rows_result().map_err(resp)?;
    rows.rows::<EventRow>()
        .map_err(resp)?
        .map(|row| row.map_err(resp).and_then(into_event))
        .collect()
}

fn reaction_rows(r: QueryResult) -> Result<Vec<ReactionRow>, CqlError> {
    let rows = r.into_rows_result().map_err(resp)?;
    rows.rows::<(i64, String, Uuid, Option<DateTime<Utc>>)>()
        .map_err(resp)?
        .map(|row| {
            row.map(|(seq, emoji, user, at)| ReactionRow {
                seq,
                emoji,
                user: UserId(user),
                at,
            })
            .map_err(resp)
        })
        .collect()
}

fn columns_of(c: &Change) -> (&'static str, Option<&str>, Option<&str>, Option<i32>) {
    let count = |n: u32| Some(i32::try_from(n).unwrap_or(i32::MAX));
    match c {
        Change::Edited { body, .. } => ("edited", Some(body.as_str()), None, None),
        Change::Deleted => ("deleted", None, None, None),
        Change::ReactionAdded { emoji, count: n } => {
            ("reaction_added", None, Some(emoji.as_str()), count(*n))
        }
        Change::ReactionRemoved { emoji, count: n } => {
            ("reaction_removed", None, Some(emoji.as_str()), count(*n))
        }
    }
}

fn into_event(r: EventRow) -> Result<ChannelEvent, CqlError> {
    let (
        channel_id,
        seq,
        id,
        actor_id,
        message_id,
        message_seq,
        client_event_id,
        created_at,
        kind,
        body,
        emoji,
        count,
        mentions,
    ) = r;
    let count = count.unwrap_or(0).max(0) as u32;
    let change = match (kind.as_str(), body, emoji) {
        ("edited", Some(body), _) => Change::Edited {
            body,
            mentions: mentions_read(mentions),
        },
        ("deleted", _, _) => Change::Deleted,
        ("reaction_added", _, Some(emoji)) => Change::ReactionAdded { emoji, count },
        ("reaction_removed", _, Some(emoji)) => Change::ReactionRemoved { emoji, count },
        (kind, _, _) => return Err(CqlError::Response(format!("unknown event kind {kind}"))),
    };
    Ok(ChannelEvent {
        id: EventId(id),
        channel_id: ChannelId(channel_id),
        seq,
        actor_id: UserId(actor_id),
        message_id: MessageId(message_id),
        message_seq,
        client_event_id,
        created_at,
        change,
    })
}
