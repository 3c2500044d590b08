//! One module per store, each with documented repository functions. Services use these types,
//! never the store clients (`sqlx`, `scylla`, `redis`, `rdkafka`) directly.
//!
//! # Layout
//! - [`pg`]: PostgreSQL: users, channels, memberships, refresh tokens; migrations in
//!   `migrations/postgres/` (embedded).
//! - [`directory`]: PostgreSQL too: the channel directory and channel activity.
//! - [`read_state`]: PostgreSQL too: read marks, the message log unread counts come from, the
//!   conversation list.
//! - [`devices`]: PostgreSQL too: push notification devices, levels and preferences.
//! - [`attachments`]: PostgreSQL too: attachments, pending until their upload is checked.
//! - [`push_outbox`]: PostgreSQL too: who the notifier notifies, and its outbox of deliveries.
//! - [`cql`]: Cassandra/ScyllaDB: messages, bucketed by channel position; schema in
//!   `migrations/cql/` (embedded).
//! - Redis, one type per purpose over one shared connection ([`redis_conn`]):
//!   [`presence`] (which gateway each connected user is on, with expiry), [`claims`] (send
//!   claims that make resends idempotent), [`epochs`] (membership epochs that end cached
//!   memberships at a leave), [`revocations`] (revoked sessions, and the pub/sub channel that
//!   closes their sockets), [`ws_tickets`] (single-use tickets that open a WebSocket), [`read_feed`] (read marks
//!   passed on to a user's other devices).
//! - [`bus`]: Kafka: the producer and the consumer group of the `messages` topic, its creation.
//! - [`objects`]: the S3-compatible object store of attachments: the bucket, presigned upload and
//!   download URLs (for the public origin, through nginx), HEAD, ranged GET, PUT and DELETE.
//! - [`media`]: what `chat-media` takes from the attachments table: thumbnail jobs, and the
//!   uploads its sweeper removes.
//! - [`push`]: the gateways' internal delivery endpoint, found through [`presence`]: message
//!   servers push messages, gateways push each other ephemeral signals (typing, presence).

pub mod attachments;
pub mod bus;
pub mod claims;
pub mod cql;
pub mod devices;
pub mod directory;
pub mod epochs;
pub mod media;
pub mod objects;
pub mod pg;
pub mod presence;
pub mod push;
pub mod push_outbox;
pub mod read_feed;
pub mod read_state;
pub mod redis_conn;
pub mod revocations;
pub mod ws_tickets;

pub use redis_conn::Redis;
