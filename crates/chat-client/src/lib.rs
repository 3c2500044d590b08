//! A client of the public contract (`API.md`, `docs/protocol.md`), shared by the end-to-end
//! tests and the load generator so the protocol is written once.
//!
//! # Layout
//! - [`rest`]: [`Api`], one typed method per REST endpoint, and a raw [`Api::call`] for
//!   requests the types cannot express (malformed bodies in error-path tests).
//! - [`ws`]: [`Connector`] opens a `/ws` connection and waits for `ready`; a [`Connection`]
//!   sends frames and reads them, typed or as text.
//! - [`resume`]: [`Outbox`], what a client keeps to survive a lost connection (unacked sends,
//!   the last message seen per channel), and the reconnect with [`Backoff`]: `resume` first,
//!   then every unacked send again with its original `client_msg_id`.
//! - [`error`]: [`Error`], carrying the HTTP status and the error body's `code`.
//!
//! Wire types are `chat-types`'; nothing here redefines them.

pub mod error;
pub mod rest;
pub mod resume;
pub mod ws;

#[cfg(test)]
mod tests;

pub use error::Error;
pub use rest::{Api, DirectChannel, Page, Reply};
pub use resume::{Backoff, Outbox};
pub use ws::{Connection, Connector};

pub type Result<T, E = Error> = std::result::Result<T, E>;
