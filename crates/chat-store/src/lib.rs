//! One module per store, each with documented repository functions.
//!
//! # Layout
//! - [`pg`]: PostgreSQL: users, channels, memberships, refresh tokens; migrations in
//!   `migrations/postgres/` (embedded).
//! - [`cql`]: Cassandra/ScyllaDB: messages, bucketed by channel position; schema in
//!   `migrations/cql/` (embedded).
//! - [`presence`]: Redis: which gateway each connected user is on, with expiry.
//! - [`bus`]: Kafka: the producer of the `messages` topic and the topic's creation.

pub mod bus;
pub mod cql;
pub mod pg;
pub mod presence;
