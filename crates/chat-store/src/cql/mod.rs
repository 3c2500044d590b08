//! Cassandra/ScyllaDB: the message history.
//!
//! Everything in a channel has a position `seq` (1, 2, 3, ... without gaps), which the message
//! server owning the channel's Kafka partition gives out in partition order: messages (table
//! `messages`) and channel events, edits, deletes and reactions (`channel_events`, see
//! [`events`]). Because the union has no gaps, what a gateway sends again after a position is a
//! known range in at most two partitions per table: no scans. History pages, which list messages
//! only, read with `LIMIT` from the right end of a range ([`history`]).

mod events;
mod history;

pub use events::StateWrite;
pub use history::Page;

use chat_types::attachments::MessageAttachment;
use chat_types::events::ChannelEvent;
use chat_types::{ChannelId, Message, MessageId, UserId};
use chrono::{DateTime, Utc};
use fail::fail_point;
use futures::future::try_join_all;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::speculative_execution::{
    SimpleSpeculativeExecutionPolicy, SpeculativeExecutionPolicy,
};
use scylla::statement::Consistency;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::MaybeUnset;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub use scylla::errors::ExecutionError;
use scylla::response::query_result::QueryResult;

/// Messages per partition. Changing it re-addresses every stored message.
pub const BUCKET_SIZE: i64 = 1024;

/// The partition bucket of a position.
pub fn bucket_of(seq: i64) -> i64 {
    seq / BUCKET_SIZE
}

/// Schema files under `migrations/cql`, in order, embedded.
pub const SCHEMA: &[(&str, &str)] = &[
    (
        "0001_messages.cql",
        include_str!("../../../../migrations/cql/0001_messages.cql"),
    ),
    (
        "0002_message_offsets.cql",
        include_str!("../../../../migrations/cql/0002_message_offsets.cql"),
    ),
    (
        "0003_channel_events.cql",
        include_str!("../../../../migrations/cql/0003_channel_events.cql"),
    ),
    (
        "0004_mentions.cql",
        include_str!("../../../../migrations/cql/0004_mentions.cql"),
    ),
    (
        "0005_attachments.cql",
        include_str!("../../../../migrations/cql/0005_attachments.cql"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum CqlError {
    // Boxed: the driver's errors are large, and these travel through every store call.
    #[error("cassandra request failed: {0}")]
    Execution(Box<ExecutionError>),
    #[error("cassandra connection failed: {0}")]
    Connect(Box<scylla::errors::NewSessionError>),
    #[error("cassandra prepare failed: {0}")]
    Prepare(Box<scylla::errors::PrepareError>),
    #[error("unexpected cassandra response: {0}")]
    Response(String),
    /// A fault injected by a fail point (`FAILPOINTS`, the fault tests only).
    #[error("fault injected at {0}")]
    Injected(&'static str),
    /// The index of stored message ids, which lives in PostgreSQL (the unread log,
    /// [`crate::read_state::logged_places`]), failed.
    #[error("message index (postgresql) failed: {0}")]
    Index(Box<sqlx::Error>),
}

impl From<sqlx::Error> for CqlError {
    fn from(e: sqlx::Error) -> Self {
        CqlError::Index(Box::new(e))
    }
}

impl From<ExecutionError> for CqlError {
    fn from(e: ExecutionError) -> Self {
        CqlError::Execution(Box::new(e))
    }
}

impl From<scylla::errors::NewSessionError> for CqlError {
    fn from(e: scylla::errors::NewSessionError) -> Self {
        CqlError::Connect(Box::new(e))
    }
}

impl From<scylla::errors::PrepareError> for CqlError {
    fn from(e: scylla::errors::PrepareError) -> Self {
        CqlError::Prepare(Box::new(e))
    }
}

fn resp<E: std::fmt::Display>(e: E) -> CqlError {
    CqlError::Response(e.to_string())
}

/// Connect without a keyspace (for the schema) or with one.
pub async fn connect(
    cfg: &chat_common::config::CassandraConfig,
    with_keyspace: bool,
) -> Result<Session, CqlError> {
    // Every statement runs at the configured consistency (the session's default profile).
    // Every statement is idempotent (see `MessageStore::new`), so a slow one may be asked of
    // another replica as well (`speculative_after_ms`).
    let speculative = (cfg.speculative_after_ms > 0).then(|| {
        Arc::new(SimpleSpeculativeExecutionPolicy {
            max_retry_count: 2,
            retry_interval: Duration::from_millis(cfg.speculative_after_ms),
        }) as Arc<dyn SpeculativeExecutionPolicy>
    });
    let profile = ExecutionProfile::builder()
        .consistency(consistency(cfg.consistency))
        .speculative_execution_policy(speculative)
        .build()
        .into_handle();
    let mut b = SessionBuilder::new()
        .known_nodes(cfg.node_list())
        .connection_timeout(Duration::from_secs(5))
        .default_execution_profile_handle(profile);
    if with_keyspace {
        b = b.use_keyspace(&cfg.keyspace, false);
    }
    Ok(b.build().await?)
}

fn consistency(c: chat_common::config::CqlConsistency) -> Consistency {
    use chat_common::config::CqlConsistency as C;
    match c {
        C::One => Consistency::One,
        C::LocalOne => Consistency::LocalOne,
        C::Quorum => Consistency::Quorum,
        C::LocalQuorum => Consistency::LocalQuorum,
        C::EachQuorum => Consistency::EachQuorum,
        C::All => Consistency::All,
    }
}

/// Create the keyspace and apply every schema file (idempotent: `IF NOT EXISTS`).
pub async fn apply_schema(
    session: &Session,
    cfg: &chat_common::config::CassandraConfig,
) -> Result<(), CqlError> {
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': {}}}",
                cfg.keyspace, cfg.replication_factor
            ),
            &[],
        )
        .await?;
    for (_name, text) in SCHEMA {
        for stmt in statements(text) {
            match session
                .query_unpaged(stmt.replace("{keyspace}", &cfg.keyspace), &[])
                .await
            {
                Ok(_) => {}
                // CQL has no `ADD ... IF NOT EXISTS` on both Cassandra and ScyllaDB: a column
                // that is already there means this migration ran before.
                Err(e) if stmt.contains(" ADD ") && column_exists(&e.to_string()) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    session.await_schema_agreement().await.map_err(resp)?;
    Ok(())
}

/// Whether an `ALTER TABLE ... ADD` failed because the column is there already: Cassandra 5
/// says "already exists", ScyllaDB and older Cassandra "conflicts with an existing column".
fn column_exists(error: &str) -> bool {
    error.contains("already exists") || error.contains("conflicts with an existing column")
}

/// The statements of a schema file: `--` comments dropped, split on `;`.
fn statements(text: &str) -> Vec<String> {
    let without_comments: String = text
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Where a message id is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub channel_id: ChannelId,
    pub seq: i64,
    /// Offset of the Kafka record that was stored (absent for rows written by older builds).
    pub kafka_offset: Option<i64>,
}

type MessageRow = (
    Uuid,
    i64,
    Uuid,
    Uuid,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<bool>,
    Option<Uuid>,
    Option<i64>,
    Option<Vec<Uuid>>,
    Option<Vec<AttachmentCell>>,
);

/// The columns of [`MessageRow`], in order.
const MESSAGE_COLUMNS: &str = "channel_id, seq, id, sender_id, body, client_msg_id, created_at, edited_at, deleted, reply_to, reply_to_seq, mentions, attachments";

/// One element of `messages.attachments` (the CQL type `attachment`, matched by field name).
#[derive(Debug, scylla::SerializeValue, scylla::DeserializeValue)]
struct AttachmentCell {
    id: Uuid,
    name: String,
    content_type: String,
    size: i64,
    width: Option<i32>,
    height: Option<i32>,
}

impl From<&MessageAttachment> for AttachmentCell {
    fn from(a: &MessageAttachment) -> Self {
        AttachmentCell {
            id: a.id,
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: i64::try_from(a.size).unwrap_or(i64::MAX),
            width: a.width.and_then(|w| i32::try_from(w).ok()),
            height: a.height.and_then(|h| i32::try_from(h).ok()),
        }
    }
}

impl From<AttachmentCell> for MessageAttachment {
    fn from(c: AttachmentCell) -> Self {
        crate::attachments::stored(c.id, c.name, c.content_type, c.size, c.width, c.height)
    }
}

/// Attachments as written: unset when there are none, like mentions.
fn attachments_value(attachments: &[MessageAttachment]) -> MaybeUnset<Vec<AttachmentCell>> {
    if attachments.is_empty() {
        MaybeUnset::Unset
    } else {
        MaybeUnset::Set(attachments.iter().map(AttachmentCell::from).collect())
    }
}

/// Statements per write batch, and body bytes per batch (Cassandra refuses batches over
/// `batch_size_fail_threshold`, 50 KiB by default; a message body is at most ~16 KB).
const BATCH_STATEMENTS: usize = 64;
const BATCH_BODY_BYTES: usize = 24 * 1024;
/// Ids per `IN` read.
const READ_IDS: usize = 64;

/// The values of a message row's insert.
type MessageInsert<'a> = (
    Uuid,
    i64,
    i64,
    Uuid,
    Uuid,
    &'a str,
    &'a str,
    DateTime<Utc>,
    MaybeUnset<Uuid>,
    MaybeUnset<i64>,
    MaybeUnset<Vec<Uuid>>,
    MaybeUnset<Vec<AttachmentCell>>,
);

/// Prepare `q` the way every statement here is: idempotent (see [`MessageStore::new`]), at
/// the session's consistency.
async fn prep_owned(session: &Arc<Session>, q: String) -> Result<PreparedStatement, CqlError> {
    let mut p = session.prepare(q).await?;
    p.set_is_idempotent(true);
    Ok(p)
}

/// Prepared statements over one shared session, and the index of stored message ids.
///
/// Where a message id is stored is logged in PostgreSQL (`channel_messages`, the unread log,
/// indexed on `id`) before its row is written here: a row PostgreSQL already keeps, where a
/// partition per id here (`message_ids`) was the largest single cost of storing a message
/// (docs/benchmarks.md, issue 14). `message_ids` still holds events' ids and the ids of
/// messages stored before that (`0013_message_index.sql`); lookups fall back to it.
#[derive(Clone)]
pub struct MessageStore {
    session: Arc<Session>,
    index: crate::pg::PgPool,
    insert_message: PreparedStatement,
    insert_id: PreparedStatement,
    select_ids: PreparedStatement,
    select_head: PreparedStatement,
    update_head: PreparedStatement,
    select_bucket_max: PreparedStatement,
    select_range: PreparedStatement,
    select_seqs: PreparedStatement,
    select_older: PreparedStatement,
    select_newer: PreparedStatement,
    events: events::Statements,
}

impl MessageStore {
    pub async fn new(session: Arc<Session>, index: crate::pg::PgPool) -> Result<Self, CqlError> {
        // Reads and writes at the configured consistency (the session's default profile,
        // LOCAL_QUORUM unless configured): on one node it is ONE; on a real cluster a write
        // acked here survives a node loss, which the "acked is never lost" guarantee needs.
        let prep = |q: &'static str| {
            let s = session.clone();
            async move {
                let mut p = s.prepare(q).await?;
                // Every statement here is idempotent (reads, and writes of the same values to the
                // same keys). Saying so lets the driver retry a request that failed on a broken
                // connection, e.g. the first requests after a Cassandra restart.
                p.set_is_idempotent(true);
                Ok::<_, CqlError>(p)
            }
        };
        Ok(MessageStore {
            insert_message: prep(
                "INSERT INTO messages (channel_id, bucket, seq, id, sender_id, body, client_msg_id, created_at, reply_to, reply_to_seq, mentions, attachments)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .await?,
            insert_id: prep(
                "INSERT INTO message_ids (id, channel_id, seq, kafka_offset) VALUES (?, ?, ?, ?)",
            )
            .await?,
            select_ids: prep(
                "SELECT id, channel_id, seq, kafka_offset FROM message_ids WHERE id IN ?",
            )
            .await?,
            select_head: prep("SELECT last_seq FROM channel_heads WHERE channel_id = ?").await?,
            update_head: prep("UPDATE channel_heads SET last_seq = ? WHERE channel_id = ?").await?,
            select_bucket_max: prep(
                "SELECT seq FROM messages WHERE channel_id = ? AND bucket = ? LIMIT 1",
            )
            .await?,
            select_range: prep_owned(
                &session,
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE channel_id = ? AND bucket = ? AND seq >= ? AND seq <= ?"
                ),
            )
            .await?,
            select_seqs: prep_owned(
                &session,
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE channel_id = ? AND bucket = ? AND seq IN ?"
                ),
            )
            .await?,
            select_older: prep_owned(
                &session,
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE channel_id = ? AND bucket = ? AND seq > ? AND seq < ? LIMIT ?"
                ),
            )
            .await?,
            select_newer: prep_owned(
                &session,
                format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE channel_id = ? AND bucket = ? AND seq > ? AND seq < ?
                     ORDER BY seq ASC LIMIT ?"
                ),
            )
            .await?,
            events: events::Statements::prepare(&session).await?,
            session,
            index,
        })
    }

    /// Connect to the configured keyspace and prepare every statement. `index`: the PostgreSQL
    /// pool the id index is read and written through.
    pub async fn connect(
        cfg: &chat_common::config::CassandraConfig,
        index: crate::pg::PgPool,
    ) -> Result<Self, CqlError> {
        MessageStore::new(Arc::new(connect(cfg, true).await?), index).await
    }

    /// Readiness: one cheap read.
    pub async fn ping(&self) -> Result<(), String> {
        self.head(ChannelId(Uuid::nil()))
            .await
            .map(|_| ())
            .map_err(|e| format!("cassandra: {e}"))
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Store a batch: messages and events that already have their `seq` (each with the offset
    /// of its Kafka record), and the state the events leave. `relogged`: messages of the batch
    /// stored before (replays) that are logged again, in case an older version stored them
    /// without a log row. Idempotent: storing the same batch again rewrites identical cells;
    /// the message server retries the whole call until it succeeds.
    ///
    /// In three steps, each only after the one before succeeded, because a failure part-way
    /// (a write timeout, Cassandra or the message server dying before the retry succeeds) leaves
    /// whatever was written, and the replay of the batch's records must recognise it:
    /// 1. the id rows: messages' in PostgreSQL's unread log (which the unread counts and
    ///    previews read too), events' in `message_ids`, concurrently. A message or event row
    ///    written without its id row would be given a second position by the replay (the id is
    ///    how a replay knows its record was stored); an id row alone is stored again
    ///    (`load_unstored_replays` in the message server).
    /// 2. the message and event rows (unlogged batches of messages: one request instead of one
    ///    per message; nothing needs them to be atomic).
    /// 3. the state the events leave (the edited body, the delete, reactions). Written before
    ///    its event row, it would make the replayed event moot: a delete or reaction in history's
    ///    state but never stored as an event nor pushed.
    pub async fn store(
        &self,
        messages: &[(Message, i64)],
        relogged: &[(Message, i64)],
        events: &[(ChannelEvent, i64)],
        writes: &[StateWrite],
    ) -> Result<(), CqlError> {
        let ids = events
            .iter()
            .map(|(e, offset)| (e.id.0, e.channel_id.0, e.seq, *offset))
            .collect::<Vec<_>>();
        let (logged, event_ids) = tokio::join!(
            async {
                if messages.is_empty() && relogged.is_empty() {
                    return Ok(0);
                }
                crate::read_state::log_messages(&self.index, messages.iter().chain(relogged)).await
            },
            self.insert_ids(&ids),
        );
        logged?;
        event_ids?;
        let (rows, event_rows) = tokio::join!(
            self.insert_messages(messages),
            self.insert_event_rows(events)
        );
        rows?;
        event_rows?;
        fail_point!("cql-rows-written", |_| Err(CqlError::Injected(
            "cql-rows-written"
        )));
        self.write_states(writes).await?;
        fail_point!("cql-state-written", |_| Err(CqlError::Injected(
            "cql-state-written"
        )));
        Ok(())
    }

    /// Step 1 of [`MessageStore::store`]: id rows, in unlogged batches sent concurrently.
    async fn insert_ids(&self, ids: &[(Uuid, Uuid, i64, i64)]) -> Result<(), CqlError> {
        try_join_all(ids.chunks(BATCH_STATEMENTS).map(|chunk| {
            let mut batch = Batch::new(BatchType::Unlogged);
            batch.set_is_idempotent(true);
            for _ in chunk {
                batch.append_statement(self.insert_id.clone());
            }
            async move { self.session.batch(&batch, chunk).await }
        }))
        .await?;
        Ok(())
    }

    /// Step 2 of [`MessageStore::store`] for messages: their rows, in unlogged batches (bounded
    /// in statements and body bytes) sent concurrently.
    async fn insert_messages(&self, messages: &[(Message, i64)]) -> Result<(), CqlError> {
        let mut batches: Vec<(Batch, Vec<MessageInsert<'_>>)> = Vec::new();
        let mut body_bytes = 0;
        for (m, _) in messages {
            let seq = m.seq.expect("stored messages have a position");
            let full = batches.last().is_none_or(|(_, rows)| {
                rows.len() + 1 > BATCH_STATEMENTS
                    || (body_bytes + m.body.len() > BATCH_BODY_BYTES && !rows.is_empty())
            });
            if full {
                let mut batch = Batch::new(BatchType::Unlogged);
                batch.set_is_idempotent(true);
                batches.push((batch, Vec::new()));
                body_bytes = 0;
            }
            body_bytes += m.body.len();
            let (batch, rows) = batches.last_mut().expect("pushed above");
            batch.append_statement(self.insert_message.clone());
            rows.push((
                m.channel_id.0,
                bucket_of(seq),
                seq,
                m.id.0,
                m.sender_id.0,
                m.body.as_str(),
                m.client_msg_id.as_str(),
                m.created_at,
                // Unset, not null, when absent: a null is a tombstone cell, which every row
                // would then carry in the memtable, the SSTables and every read of it.
                MaybeUnset::from_option(m.reply_to.as_ref().map(|r| r.id.0)),
                MaybeUnset::from_option(m.reply_to.as_ref().map(|r| r.seq)),
                mentions_value(&m.mentions),
                attachments_value(&m.attachments),
            ));
        }
        try_join_all(
            batches
                .iter()
                .map(|(batch, rows)| self.session.batch(batch, rows)),
        )
        .await?;
        Ok(())
    }

    /// Where these message (and event) ids are stored, for the ids that are stored: the log in
    /// PostgreSQL first, then `message_ids` for those it lacks (events, messages stored before
    /// the log was the index). For the API's cursors and the gateways' lookups; the message
    /// servers, which look up every new message, ask Cassandra only where it can know more
    /// ([`MessageStore::logged_places`], [`MessageStore::placements_in_cassandra`]).
    pub async fn placements(
        &self,
        ids: &[MessageId],
    ) -> Result<Vec<(MessageId, Placement)>, CqlError> {
        let mut found = self.logged_places(ids).await?;
        if found.len() < ids.len() {
            let known: std::collections::HashSet<MessageId> =
                found.iter().map(|(id, _)| *id).collect();
            let rest: Vec<MessageId> = ids
                .iter()
                .filter(|id| !known.contains(id))
                .copied()
                .collect();
            found.extend(self.placements_in_cassandra(&rest).await?);
        }
        Ok(found)
    }

    /// Where these messages are stored, as the log in PostgreSQL has them (one statement).
    pub async fn logged_places(
        &self,
        ids: &[MessageId],
    ) -> Result<Vec<(MessageId, Placement)>, CqlError> {
        Ok(crate::read_state::logged_places(&self.index, ids).await?)
    }

    /// Where these ids are stored, as `message_ids` has them: events' ids, and messages stored
    /// before the log was the index (`IN` reads of up to [`READ_IDS`] ids, concurrently).
    pub async fn placements_in_cassandra(
        &self,
        ids: &[MessageId],
    ) -> Result<Vec<(MessageId, Placement)>, CqlError> {
        let reads = ids.chunks(READ_IDS).map(|chunk| async move {
            let keys: Vec<Uuid> = chunk.iter().map(|id| id.0).collect();
            let r = self
                .session
                .execute_unpaged(&self.select_ids, (keys,))
                .await?;
            let rows = r.into_rows_result().map_err(resp)?;
            rows.rows::<(Uuid, Uuid, i64, Option<i64>)>()
                .map_err(resp)?
                .map(|row| {
                    let (id, c, seq, kafka_offset) = row.map_err(resp)?;
                    Ok::<_, CqlError>((
                        MessageId(id),
                        Placement {
                            channel_id: ChannelId(c),
                            seq,
                            kafka_offset,
                        },
                    ))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        Ok(try_join_all(reads).await?.into_iter().flatten().collect())
    }

    pub async fn placement(&self, id: MessageId) -> Result<Option<Placement>, CqlError> {
        Ok(self.placements(&[id]).await?.pop().map(|(_, p)| p))
    }

    /// Where an event is stored (its id as a [`MessageId`]): events' ids are only in Cassandra.
    pub async fn event_placement(&self, id: MessageId) -> Result<Option<Placement>, CqlError> {
        Ok(self
            .placements_in_cassandra(&[id])
            .await?
            .pop()
            .map(|(_, p)| p))
    }

    /// The last stored position of a channel (0 when it has nothing).
    ///
    /// `channel_heads` holds only a hint: a stored position at or below the head, moved when a
    /// channel enters a new bucket (so a batch costs no extra write per channel). The head is
    /// the newest row of the hint's bucket in either table (newest first, so one row each),
    /// continued into the next bucket while a bucket is full (positions are contiguous across
    /// messages and events).
    pub async fn head(&self, channel: ChannelId) -> Result<i64, CqlError> {
        let r = self
            .session
            .execute_unpaged(&self.select_head, (channel.0,))
            .await?;
        let rows = r.into_rows_result().map_err(resp)?;
        let row: Option<(Option<i64>,)> = rows.maybe_first_row().map_err(resp)?;
        let mut head = row.and_then(|(s,)| s).unwrap_or(0);
        let mut bucket = bucket_of(head.max(1));
        loop {
            let (messages, events) = tokio::join!(
                self.newest_in(&self.select_bucket_max, channel, bucket),
                self.newest_in(&self.events.select_bucket_max, channel, bucket),
            );
            let Some(newest) = messages?.max(events?) else {
                return Ok(head);
            };
            head = head.max(newest);
            if bucket_of(newest + 1) == bucket {
                return Ok(head);
            }
            bucket += 1;
        }
    }

    /// The newest position of one bucket of one table (`statement` selects it).
    async fn newest_in(
        &self,
        statement: &PreparedStatement,
        channel: ChannelId,
        bucket: i64,
    ) -> Result<Option<i64>, CqlError> {
        let r = self
            .session
            .execute_unpaged(statement, (channel.0, bucket))
            .await?;
        let rows = r.into_rows_result().map_err(resp)?;
        Ok(rows
            .maybe_first_row::<(i64,)>()
            .map_err(resp)?
            .map(|(s,)| s))
    }

    /// Move the head hints of channels whose positions entered a new bucket. Each position must
    /// already be stored: a hint past the stored messages would be taken for the head.
    pub async fn set_head_hints(&self, hints: &[(ChannelId, i64)]) -> Result<(), CqlError> {
        try_join_all(
            hints
                .iter()
                .map(|(c, seq)| self.session.execute_unpaged(&self.update_head, (*seq, c.0))),
        )
        .await?;
        Ok(())
    }

    /// The messages among positions `from..=to` (inclusive), oldest first, as stored (reply
    /// targets named, not previewed: see [`MessageStore::with_reply_previews`]).
    pub async fn messages_in(
        &self,
        channel: ChannelId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Message>, CqlError> {
        let mut all = self
            .range_rows(&self.select_range, channel, from, to, message_rows)
            .await?;
        all.sort_unstable_by_key(|m| m.seq);
        Ok(all)
    }

    /// Run `statement` (bound to channel, bucket, `from`, `to`) on every bucket of positions
    /// `from..=to` at once, each answer decoded by `decode`; the rows in no particular order.
    async fn range_rows<T>(
        &self,
        statement: &PreparedStatement,
        channel: ChannelId,
        from: i64,
        to: i64,
        decode: fn(QueryResult) -> Result<Vec<T>, CqlError>,
    ) -> Result<Vec<T>, CqlError> {
        let from = from.max(1);
        if to < from {
            return Ok(Vec::new());
        }
        let reads = (bucket_of(from)..=bucket_of(to)).map(|b| async move {
            let r = self
                .session
                .execute_unpaged(statement, (channel.0, b, from, to))
                .await?;
            decode(r)
        });
        Ok(try_join_all(reads).await?.into_iter().flatten().collect())
    }

    /// The stored messages at these positions (those that are messages), oldest first: one
    /// `IN` read per bucket.
    pub async fn messages_at(
        &self,
        channel: ChannelId,
        seqs: &[i64],
    ) -> Result<Vec<Message>, CqlError> {
        let mut by_bucket: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for s in seqs {
            by_bucket.entry(bucket_of(*s)).or_default().push(*s);
        }
        let reads = by_bucket.into_iter().map(|(b, seqs)| async move {
            let r = self
                .session
                .execute_unpaged(&self.select_seqs, (channel.0, b, seqs))
                .await?;
            message_rows(r)
        });
        let mut all: Vec<Message> = try_join_all(reads).await?.into_iter().flatten().collect();
        all.sort_unstable_by_key(|m| m.seq);
        Ok(all)
    }

    /// The stored message `id` of `channel`, as it is now, if it is stored (and a message).
    pub async fn message(
        &self,
        channel: ChannelId,
        id: MessageId,
    ) -> Result<Option<Message>, CqlError> {
        let Some(p) = self.placement(id).await? else {
            return Ok(None);
        };
        if p.channel_id != channel {
            return Ok(None);
        }
        let found = self.messages_at(channel, &[p.seq]).await?;
        Ok(found.into_iter().find(|m| m.id == id))
    }
}

/// Mentions as written: left unset when there are none (no cell, no tombstone).
pub(super) fn mentions_value(mentions: &[UserId]) -> MaybeUnset<Vec<Uuid>> {
    if mentions.is_empty() {
        MaybeUnset::Unset
    } else {
        MaybeUnset::Set(mentions.iter().map(|u| u.0).collect())
    }
}

pub(super) fn mentions_read(column: Option<Vec<Uuid>>) -> Vec<UserId> {
    column.unwrap_or_default().into_iter().map(UserId).collect()
}

fn message_rows(r: QueryResult) -> Result<Vec<Message>, CqlError> {
    let rows = r.into_rows_result().map_err(resp)?;
    rows.rows::<MessageRow>()
        .map_err(resp)?
        .map(|row| row.map(into_message).map_err(resp))
        .collect()
}

fn into_message(r: MessageRow) -> Message {
    let (
        channel_id,
        seq,
        id,
        sender_id,
        body,
        client_msg_id,
        created_at,
        edited_at,
        deleted,
        reply_to,
        reply_to_seq,
        mentions,
        attachments,
    ) = r;
    let mut m = Message::new(
        MessageId(id),
        ChannelId(channel_id),
        UserId(sender_id),
        body,
        client_msg_id,
        created_at,
        Some(seq),
    );
    m.edited_at = edited_at;
    m.deleted = deleted.unwrap_or(false);
    if m.deleted {
        m.body.clear();
    } else {
        m.mentions = mentions_read(mentions);
        // A deleted message's files are gone with it (their links are refused too).
        m.attachments = attachments
            .unwrap_or_default()
            .into_iter()
            .map(MessageAttachment::from)
            .collect();
    }
    // The target alone; its sender and preview are filled in by `with_reply_previews`.
    if let (Some(id), Some(seq)) = (reply_to, reply_to_seq) {
        m.reply_to = Some(Box::new(chat_types::rest::ReplyPreview {
            id: MessageId(id),
            seq,
            sender_id: UserId(Uuid::nil()),
            preview: String::new(),
            deleted: false,
        }));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_1024_positions() {
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(1023), 0);
        assert_eq!(bucket_of(1024), 1);
    }

    #[test]
    fn an_existing_column_is_recognised_in_both_dialects() {
        assert!(column_exists(
            "Error message: Column with name 'kafka_offset' already exists"
        ));
        assert!(column_exists(
            "Invalid column name kafka_offset because it conflicts with an existing column"
        ));
        assert!(!column_exists("Undefined column name x"));
    }

    #[test]
    fn schema_files_split_into_statements_without_comments() {
        let s = statements("-- a;b\nCREATE TABLE x (a int); -- c\n\nCREATE TABLE y (b int);\n");
        assert_eq!(s, vec!["CREATE TABLE x (a int)", "CREATE TABLE y (b int)"]);
    }
}
