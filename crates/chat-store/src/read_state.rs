//! PostgreSQL: read state. How far each member has read each channel (`memberships.read_seq`,
//! only moving forward), the slim log of stored messages the unread counts are counted from
//! (`channel_messages`, written by the message servers), and the conversation list built from
//! both in one statement. The log is also the index of stored message ids ([`logged_places`]).
//! Schema: `migrations/postgres/0006_read_state.sql`, `0013_message_index.sql`.

use crate::pg::{ChannelRow, PgError, PgPool};
use crate::read_feed::ReadMark;
use chat_types::attachments::MessageAttachment;
use chat_types::limits::{PREVIEW_MAX_CHARS, UNREAD_COUNT_MAX};
use chat_types::rest::{Conversation, LastMessage};
use chat_types::{ChannelId, Message, MessageId, UserId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Move read marks forward (never back), in one statement. Marks of users who are no longer
/// members change nothing. Returns how many moved.
pub async fn record_marks(db: &PgPool, marks: &[ReadMark]) -> Result<u64, PgError> {
    if marks.is_empty() {
        return Ok(0);
    }
    let users: Vec<Uuid> = marks.iter().map(|m| m.user.0).collect();
    let channels: Vec<Uuid> = marks.iter().map(|m| m.channel.0).collect();
    let seqs: Vec<i64> = marks.iter().map(|m| m.seq).collect();
    let r = sqlx::query(
        "UPDATE memberships m SET read_seq = v.seq
         FROM (SELECT user_id, channel_id, max(seq) AS seq
               FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS u (user_id, channel_id, seq)
               GROUP BY user_id, channel_id) v
         WHERE m.user_id = v.user_id AND m.channel_id = v.channel_id AND m.read_seq < v.seq",
    )
    .bind(&users)
    .bind(&channels)
    .bind(&seqs)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// An edit or delete of a logged message.
pub enum LoggedChange<'a> {
    Edited {
        channel: ChannelId,
        seq: i64,
        body: &'a str,
        mentions: &'a [UserId],
    },
    Deleted {
        channel: ChannelId,
        seq: i64,
    },
}

/// Apply edits (new preview and mentions) and deletes to the log, in one statement each.
/// Idempotent. A deleted message's row is marked, not removed: it is no longer unread, nor the
/// last message, but its id stays in the index (a resend of it must not become a new message).
pub async fn log_changes(db: &PgPool, changes: &[LoggedChange<'_>]) -> Result<(), PgError> {
    let (mut ec, mut es, mut ep, mut em) = (
        Vec::<Uuid>::new(),
        Vec::<i64>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
    );
    let (mut dc, mut ds) = (Vec::<Uuid>::new(), Vec::<i64>::new());
    for c in changes {
        match c {
            LoggedChange::Edited {
                channel,
                seq,
                body,
                mentions,
            } => {
                ec.push(channel.0);
                es.push(*seq);
                ep.push(preview(body));
                em.push(id_list(mentions));
            }
            LoggedChange::Deleted { channel, seq } => {
                dc.push(channel.0);
                ds.push(*seq);
            }
        }
    }
    if !ec.is_empty() {
        sqlx::query(
            "UPDATE channel_messages m
             SET preview = r.preview, mentions = string_to_array(r.mentions, ' ')::uuid[]
             FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[])
                  AS r (channel_id, seq, preview, mentions)
             WHERE m.channel_id = r.channel_id AND m.seq = r.seq",
        )
        .bind(&ec)
        .bind(&es)
        .bind(&ep)
        .bind(&em)
        .execute(db)
        .await?;
    }
    if !dc.is_empty() {
        sqlx::query(
            "UPDATE channel_messages m SET deleted = true, preview = '', mentions = '{}'
             FROM unnest($1::uuid[], $2::bigint[]) AS r (channel_id, seq)
             WHERE m.channel_id = r.channel_id AND m.seq = r.seq AND NOT m.deleted",
        )
        .bind(&dc)
        .bind(&ds)
        .execute(db)
        .await?;
    }
    Ok(())
}

/// Log stored messages (each with its position, the mentions the message server resolved and
/// the offset of the Kafka record it was stored from), in one statement. A message logged
/// before is left as it is (a deleted one stays deleted). Returns how many were new.
pub async fn log_messages<'a>(
    db: &PgPool,
    messages: impl Iterator<Item = &'a (Message, i64)>,
) -> Result<u64, PgError> {
    let (mut channels, mut seqs, mut ids, mut senders, mut times, mut previews, mut mentions) = (
        Vec::<Uuid>::new(),
        Vec::<i64>::new(),
        Vec::<Uuid>::new(),
        Vec::<Uuid>::new(),
        Vec::<DateTime<Utc>>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
    );
    let mut offsets = Vec::<i64>::new();
    for (m, offset) in messages {
        let Some(seq) = m.seq else { continue };
        offsets.push(*offset);
        channels.push(m.channel_id.0);
        seqs.push(seq);
        ids.push(m.id.0);
        senders.push(m.sender_id.0);
        times.push(m.created_at);
        previews.push(message_preview(&m.body, &m.attachments));
        mentions.push(id_list(&m.mentions));
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let r = sqlx::query(
        "INSERT INTO channel_messages
             (channel_id, seq, id, sender_id, created_at, preview, mentions, kafka_offset)
         SELECT r.channel_id, r.seq, r.id, r.sender_id, r.created_at, r.preview,
                string_to_array(r.mentions, ' ')::uuid[], r.kafka_offset
         FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::uuid[], $5::timestamptz[],
                     $6::text[], $7::text[], $8::bigint[])
              AS r (channel_id, seq, id, sender_id, created_at, preview, mentions, kafka_offset)
         ON CONFLICT DO NOTHING",
    )
    .bind(&channels)
    .bind(&seqs)
    .bind(&ids)
    .bind(&senders)
    .bind(&times)
    .bind(&previews)
    .bind(&mentions)
    .bind(&offsets)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Where the logged messages among `ids` are stored: channel, position and the Kafka record
/// (deleted ones too). One statement over the log's index on `id`. Messages stored before the
/// log was the index (`0013_message_index.sql`) may be missing: [`crate::cql::MessageStore`]
/// looks those up in Cassandra.
pub async fn logged_places(
    db: &PgPool,
    ids: &[MessageId],
) -> Result<Vec<(MessageId, crate::cql::Placement)>, PgError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
    let mut rows: Vec<(Uuid, Uuid, i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, channel_id, seq, kafka_offset FROM channel_messages WHERE id = ANY($1)",
    )
    .bind(&keys)
    .fetch_all(db)
    .await?;
    // One place per id: an id stored at two positions (possible before session 29's fix) is
    // at its first.
    rows.sort_unstable_by_key(|(id, _, seq, _)| (*id, *seq));
    rows.dedup_by_key(|(id, ..)| *id);
    Ok(rows
        .into_iter()
        .map(|(id, c, seq, kafka_offset)| {
            (
                MessageId(id),
                crate::cql::Placement {
                    channel_id: ChannelId(c),
                    seq,
                    kafka_offset,
                },
            )
        })
        .collect())
}

/// Since when every stored message is logged before it is stored (`message_index` in
/// `0013_message_index.sql`), set now if no message server of this version has started before.
/// Records produced earlier may have been stored by an older message server without a log row.
pub async fn logged_since(db: &PgPool) -> Result<DateTime<Utc>, PgError> {
    sqlx::query("INSERT INTO message_index (logged_since) VALUES (now()) ON CONFLICT DO NOTHING")
        .execute(db)
        .await?;
    // '-infinity' (a new install) reads as an error in chrono: ask for the epoch milliseconds.
    let (ms,): (f64,) = sqlx::query_as(
        "SELECT CASE WHEN logged_since = '-infinity' THEN -1e15
                     ELSE extract(epoch FROM logged_since) * 1000 END::float8
         FROM message_index",
    )
    .fetch_one(db)
    .await?;
    Ok(DateTime::from_timestamp_millis(ms as i64).unwrap_or(DateTime::<Utc>::MIN_UTC))
}

/// User ids as one space-separated text: PostgreSQL cannot unnest an array of arrays of
/// uneven lengths, so each row's list travels as text (`string_to_array('', ' ')` is `{}`).
fn id_list(ids: &[UserId]) -> String {
    let mut s = String::with_capacity(ids.len() * 37);
    for (i, u) in ids.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(u.0.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    }
    s
}

/// The first [`PREVIEW_MAX_CHARS`] characters of `body`: what the conversation list and
/// notifications show.
pub fn preview(body: &str) -> String {
    match body.char_indices().nth(PREVIEW_MAX_CHARS) {
        Some((cut, _)) => body[..cut].to_owned(),
        None => body.to_owned(),
    }
}

/// The preview of a message: its body's, or for files sent without text the first file's
/// name ("📎 IMG_0042.jpg", "📎 IMG_0042.jpg (+2)"), so a list never shows an empty line.
pub fn message_preview(body: &str, attachments: &[MessageAttachment]) -> String {
    match attachments {
        [first, rest @ ..] if body.is_empty() => {
            let more = if rest.is_empty() {
                String::new()
            } else {
                format!(" (+{})", rest.len())
            };
            preview(&format!("📎 {}{more}", first.name))
        }
        _ => preview(body),
    }
}

#[derive(sqlx::FromRow)]
struct ConversationRow {
    #[sqlx(flatten)]
    channel: ChannelRow,
    read_seq: i64,
    last_id: Option<Uuid>,
    last_seq: Option<i64>,
    last_sender: Option<Uuid>,
    last_preview: Option<String>,
    last_at: Option<DateTime<Utc>>,
    unread: i64,
    mentioned: i64,
}

/// The caller's conversations, most recent activity first (a channel without messages counts
/// from when the caller joined), with the last message and the caller's unread counts: one
/// statement, each count bounded by [`UNREAD_COUNT_MAX`] rows of the log.
pub async fn conversations_of(db: &PgPool, user: UserId) -> Result<Vec<Conversation>, PgError> {
    let rows: Vec<ConversationRow> = sqlx::query_as(
        "SELECT c.id, c.kind,
                CASE WHEN c.kind = 'direct' THEN coalesce(other.display_name, c.name) ELSE c.name END AS name,
                c.description, c.created_at, c.created_by, m.read_seq,
                last.id AS last_id, last.seq AS last_seq, last.sender_id AS last_sender,
                last.preview AS last_preview, last.created_at AS last_at,
                coalesce(unread.n, 0) AS unread, coalesce(unread.mentioned, 0) AS mentioned
         FROM memberships m
         JOIN channels c ON c.id = m.channel_id
         LEFT JOIN LATERAL (
             SELECT u.display_name FROM memberships m2 JOIN users u ON u.id = m2.user_id
             WHERE c.kind = 'direct' AND m2.channel_id = c.id AND m2.user_id <> $1 LIMIT 1
         ) other ON true
         LEFT JOIN LATERAL (
             SELECT l.id, l.seq, l.sender_id, l.preview, l.created_at FROM channel_messages l
             WHERE l.channel_id = c.id AND NOT l.deleted ORDER BY l.seq DESC LIMIT 1
         ) last ON true
         LEFT JOIN LATERAL (
             SELECT count(*) AS n, count(*) FILTER (WHERE $1 = ANY (x.mentions)) AS mentioned
             FROM (SELECT l.mentions FROM channel_messages l
                   WHERE l.channel_id = c.id AND l.seq > m.read_seq AND l.sender_id <> $1
                         AND NOT l.deleted
                   ORDER BY l.seq LIMIT $2) x
         ) unread ON last.seq > m.read_seq
         WHERE m.user_id = $1
         ORDER BY coalesce(last.created_at, m.joined_at) DESC, c.id",
    )
    .bind(user.0)
    .bind(i64::from(UNREAD_COUNT_MAX))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let last_message = match (
                r.last_id,
                r.last_seq,
                r.last_sender,
                r.last_preview,
                r.last_at,
            ) {
                (Some(id), Some(seq), Some(sender), Some(preview), Some(at)) => Some(LastMessage {
                    id: MessageId(id),
                    seq,
                    sender_id: UserId(sender),
                    preview,
                    created_at: at,
                }),
                _ => None,
            };
            Conversation {
                channel: r.channel.into(),
                head_seq: last_message.as_ref().map_or(0, |l| l.seq),
                last_message,
                read_seq: r.read_seq,
                unread_count: u32::try_from(r.unread).unwrap_or(UNREAD_COUNT_MAX),
                mention_count: u32::try_from(r.mentioned).unwrap_or(UNREAD_COUNT_MAX),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_cut_at_a_character_boundary() {
        assert_eq!(preview("short"), "short");
        let file = |name: &str| MessageAttachment {
            id: Uuid::nil(),
            name: name.into(),
            content_type: "image/png".into(),
            size: 1,
            width: None,
            height: None,
        };
        assert_eq!(message_preview("", &[file("a.png")]), "📎 a.png");
        assert_eq!(
            message_preview("", &[file("a.png"), file("b.png"), file("c.pdf")]),
            "📎 a.png (+2)"
        );
        assert_eq!(message_preview("look", &[file("a.png")]), "look");
        let long = "é".repeat(PREVIEW_MAX_CHARS + 10);
        assert_eq!(preview(&long).chars().count(), PREVIEW_MAX_CHARS);
    }
}
